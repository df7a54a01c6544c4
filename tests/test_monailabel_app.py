"""A real MONAI Label server with the project's app: /info/, inference for a 2D and a 3D bundle, training.

The server runs as a subprocess on a free 127.0.0.1 port, from temporary copies of the app, the bundles
(random weights) and a studies folder, and is stopped by its PID (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

pytest.importorskip(
    "monailabel",
    reason="the MONAI Label extra is not installed: pip install -c constraints.txt -e '.[label]' && "
    "pip install -c constraints.txt --no-deps monailabel pydicom-seg",
)

from conftest import copy_bundle  # noqa: E402

from contextloss_monai.data.synthetic import write_synthetic_dataset  # noqa: E402
from contextloss_monai.label import find_bundles  # noqa: E402
from contextloss_monai.method import LOSS_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AFFINE = np.array([[0.5, 0, 0, 10.0], [0, 0.5, 0, -5.0], [0, 0, 1.0, 2.0], [0, 0, 0, 1]])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, data: bytes | None = None, timeout: float = 300) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    """``python -m monailabel.main start_server`` as a subprocess in its own process group."""

    def __init__(self, workdir: Path, bundles_dir: Path, models: str, conf: dict | None = None, host: str = "127.0.0.1") -> None:
        self.workdir, self.port = workdir, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = workdir / "app"
        shutil.copytree(ROOT / "apps" / "contextloss_label", app, dirs_exist_ok=True)
        self.log = workdir / "server.log"
        command = [
            sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(workdir / "studies"),
            "--conf", "bundles_dir", str(bundles_dir), "--conf", "models", models, "--host", host, "--port", str(self.port),
        ]
        for key, value in (conf or {}).items():
            command += ["--conf", key, str(value)]
        self.tmp = workdir / "server_tmp"  # the server's temporary files (uploads), checked to be cleaned up
        self.tmp.mkdir(exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", MONAI_LABEL_SESSION_PATH=str(workdir / "sessions"), TMPDIR=str(self.tmp))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_for_info(self, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"monailabel exited with {self.process.returncode} before serving /info/:\n{self.logs()}")
            try:
                status, body = _request(f"{self.url}/info/", timeout=5)
                if status == 200:
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"monailabel did not answer /info/ within {timeout} s:\n{self.logs()}")

    def exit_code(self, reason: str, timeout: float = 180) -> int:
        """The exit code of a server expected to stop at start-up (for ``reason``); fails the test if it keeps running."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server kept running with {reason}:\n{self.logs()}")
        finally:
            self.stop()
        return self.process.returncode

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        try:  # anything the server started in its process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Bundles roads_2d and vessap_3d with random weights; studies: one 2D image, one 3D volume, two labelled 2D images."""
    work = tmp_path_factory.mktemp("monailabel")
    bundles = work / "bundles"
    for name in ("roads_2d", "vessap_3d"):
        copy_bundle(name, bundles)
    write_synthetic_dataset("roads", work / "roads", n_train=5, n_test=1, size=64, progress=False)
    write_synthetic_dataset("vessels3d", work / "vessels", n_train=5, n_test=1, size=32, progress=False)
    studies = work / "studies"
    (studies / "labels" / "final").mkdir(parents=True)

    def save(source: Path, target: Path) -> None:
        nib.save(nib.Nifti1Image(np.asarray(nib.load(source).dataobj), AFFINE), target)

    save(work / "roads/imagesTs/roads_005.nii.gz", studies / "road_image.nii.gz")
    save(work / "vessels/imagesTs/vessels3d_005.nii.gz", studies / "vessel_volume.nii.gz")
    for i in range(2):
        save(work / f"roads/imagesTr/roads_00{i}.nii.gz", studies / f"road_train_{i}.nii.gz")
        save(work / f"roads/labelsTr/roads_00{i}.nii.gz", studies / "labels" / "final" / f"road_train_{i}.nii.gz")
    return work


@pytest.fixture(scope="module")
def server(workspace):
    server = Server(workspace, workspace / "bundles", "roads_2d,vessap_3d")
    try:
        yield server
    finally:
        server.stop()
        assert server.process.poll() is not None, "the monailabel server is still running"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", server.port)) != 0, "the server port still accepts connections"


def _infer(server: Server, model: str, image: str, tmp_path: Path) -> nib.Nifti1Image:
    status, body = _request(f"{server.url}/infer/{model}?image={image}&output=image", data=b"{}")
    assert status == 200, f"infer {model} on {image}: HTTP {status}\n{server.logs()}"
    path = tmp_path / f"{model}_{image}.nii.gz"
    path.write_bytes(body)
    return nib.load(path)


def test_info_lists_the_bundles_with_labels_and_dimension(server):
    info = server.wait_for_info()
    models = info["models"]
    assert set(models) == {"roads_2d", "vessap_3d"}
    assert models["roads_2d"]["labels"] == {"road": 1} and models["roads_2d"]["dimension"] == 2
    assert models["vessap_3d"]["labels"] == {"vessel": 1} and models["vessap_3d"]["dimension"] == 3
    assert models["roads_2d"]["type"] == "segmentation"
    assert set(info["trainers"]) == {"roads_2d", "vessap_3d"}
    options = info["trainers"]["roads_2d"]["config"]  # the client's choices: the bundle's loss first, then every other
    assert options["loss_name"][0] == "context" and sorted(options["loss_name"]) == sorted(LOSS_NAMES) and options["gamma"] == 0.2
    assert info["datastore"]["total"] == 4 and info["datastore"]["completed"] == 2


@pytest.mark.parametrize("model, image, shape", [("roads_2d", "road_image", (64, 64)), ("vessap_3d", "vessel_volume", (32, 32, 16))])
def test_infer_returns_a_label_map_on_the_image_grid(server, model, image, shape, tmp_path):
    server.wait_for_info()
    result = _infer(server, model, image, tmp_path)
    label = np.asarray(result.dataobj)
    assert label.shape == shape
    assert set(np.unique(label)) <= {0, 1}
    np.testing.assert_allclose(result.affine, AFFINE, atol=1e-6)


def test_train_runs_both_stages_and_inference_uses_the_new_model(server, workspace, tmp_path):
    server.wait_for_info()
    models = workspace / "bundles" / "roads_2d" / "models"
    before = (models / "model.pt").stat().st_mtime_ns
    request = json.dumps({"max_epochs": 2, "val_split": 0.5, "device": "cpu", "loss_name": "cbdice", "gamma": 1}).encode()
    status, body = _request(f"{server.url}/train/roads_2d?run_sync=true", data=request, timeout=600)
    assert status == 200, f"train: HTTP {status} {body[:500]!r}\n{server.logs()}"
    assert (models / "pretrained.pt").is_file(), "pretraining did not write models/pretrained.pt"
    assert (models / "model.pt").stat().st_mtime_ns != before, "fine-tuning did not replace models/model.pt"
    assert (models.parent / "logs" / "finetune_cbdice_g1").is_dir(), "the request's loss_name and gamma did not reach the fine-tuning"
    assert "fine-tuning with cbdice" in server.logs()
    result = _infer(server, "roads_2d", "road_image", tmp_path)
    assert result.shape == (64, 64)


def test_a_bundle_without_weights_stops_the_server_at_start(workspace, tmp_path):
    bundles = tmp_path / "bundles"
    copy_bundle("roads_2d", bundles)
    copy_bundle("cement_lines_3d", bundles, weights=False)
    (tmp_path / "studies").mkdir()
    broken = Server(tmp_path, bundles, "roads_2d,cement_lines_3d")
    assert broken.exit_code("a bundle that has no models/model.pt") != 0
    assert "cement_lines_3d: model_path" in broken.logs() and "model.pt does not exist" in broken.logs()


def test_find_bundles_errors_name_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundles_dir"):
        find_bundles(tmp_path / "absent")
    copy_bundle("roads_2d", tmp_path, weights=False)
    assert find_bundles(tmp_path) == [tmp_path / "roads_2d"]
    assert find_bundles(tmp_path, "roads_2d") == [tmp_path / "roads_2d"]
    with pytest.raises(FileNotFoundError, match=r"models \['vessap_3d'\] not found.*available: \['roads_2d'\]"):
        find_bundles(tmp_path, "roads_2d,vessap_3d")
    with pytest.raises(ValueError, match="holds no bundle"):
        find_bundles(tmp_path / "roads_2d" / "docs")


def _send(url: str, method: str, body: bytes = b"", headers: dict | None = None, timeout: float = 120) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _upload(url: str, field: str, filename: str, content: bytes, method: str = "PUT") -> tuple[int, bytes]:
    boundary = "contextlossboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{{}}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = _send(url, method, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return status, answer


def test_server_refuses_names_that_leave_the_studies_folder(server, workspace):
    server.wait_for_info()
    config = workspace / "bundles" / "roads_2d" / "configs" / "train.yaml"
    before = config.read_bytes()
    payload = b"run:\n- $__import__('os').system('touch pwned')\n"
    status, body = _upload(f"{server.url}/datastore/image?image=../bundles/roads_2d/configs/train", "file", "train.yaml", payload)
    assert status == 400 and b"plain name" in body
    assert config.read_bytes() == before
    label = (workspace / "studies" / "labels" / "final" / "road_train_0.nii.gz").read_bytes()
    status, body = _upload(f"{server.url}/datastore/label?image=road_train_0&tag=../../../escaped", "label", "l.nii.gz", label)
    assert status == 400 and b"tag must be a plain name" in body
    assert not list(workspace.parent.rglob("escaped*"))
    outside = str(workspace / "roads" / "imagesTs" / "roads_005.nii.gz")  # a file the server can read
    status, body = _request(f"{server.url}/infer/roads_2d?image={outside}&output=image", data=b"{}")
    assert status == 400 and b"plain name" in body
    status, _, body = _send(f"{server.url}/infer/roads_2d?image=road_image&output=json", "POST",
                            urllib.parse.urlencode({"params": json.dumps({"image": outside})}).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and b"params ['image'] are not accepted" in body
    assert not (workspace / "pwned").exists() and not (workspace / "app" / "pwned").exists()


def test_server_answers_bad_requests_with_4xx_and_cleans_uploads(server, workspace):
    server.wait_for_info()
    status, body = _request(f"{server.url}/infer/no_such_model?image=road_image", data=b"{}")
    assert status == 404 and b"no_such_model" in body
    status, _, body = _send(f"{server.url}/infer/roads_2d?image=road_image", "POST", b"params=%7Bnot+json",
                            {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and body
    status, body = _upload(f"{server.url}/datastore/image?image=not_an_image", "file", "notes.nii.gz", b"not an image" * 1000)
    assert status == 400 and b"not a readable image" in body
    status, body = _upload(f"{server.url}/datastore/label?image=road_train_1&tag=final", "label", "l.nii.gz", b"garbage")
    assert status == 400 and b"not a readable image" in body
    time.sleep(0.5)
    assert [f for f in server.tmp.iterdir() if f.name.endswith(".nii.gz")] == []  # no refused upload left behind
    good = (workspace / "studies" / "road_image.nii.gz").read_bytes()
    status, body = _upload(f"{server.url}/datastore/image?image=uploaded_copy", "file", "uploaded_copy.nii.gz", good)
    assert status == 200 and json.loads(body)["image"] == "uploaded_copy"
    assert (workspace / "studies" / "uploaded_copy.nii.gz").read_bytes() == good


def test_cors_is_off_unless_configured(server):
    server.wait_for_info()
    status, headers, _ = _send(f"{server.url}/info/", "GET", headers={"Origin": "http://evil.example"})
    assert status == 200 and not any(k.lower().startswith("access-control-allow") for k in headers)
    status, headers, _ = _send(f"{server.url}/infer/roads_2d?image=road_image", "OPTIONS",
                               headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert not any(k.lower().startswith("access-control-allow") for k in headers)


# --- the probes of a hostile client: each refusal against the real server -------------------------------------

TOKEN = "a-long-enough-test-token-0123456789"


def _multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of ``(name, filename or None, content)`` fields and its content type."""
    boundary = "contextlossprobe"
    body = b""
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post_form(url: str, fields, method: str = "POST", headers: dict | None = None) -> tuple[int, bytes]:
    body, content_type = _multipart(fields)
    status, _, answer = _send(url, method, body, {"Content-Type": content_type, **(headers or {})})
    return status, answer


def _nifti_bytes(array: np.ndarray, tmp_path: Path, name: str = "x.nii.gz") -> bytes:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(array, AFFINE), path)
    return path.read_bytes()


def test_routes_outside_the_allow_list_are_not_served(server, workspace):
    server.wait_for_info()
    model = workspace / "bundles" / "roads_2d" / "models" / "model.pt"
    before = model.read_bytes()
    for method, path, hint in [("PUT", "/model/roads_2d", b"model_upload"), ("DELETE", "/model/roads_2d", b""),
                               ("PUT", "/session/?uncompress=true", b"sessions"), ("GET", "/datastore/dataset", b"dataset_zip"),
                               ("GET", "/logs/", b"logs"), ("POST", "/batch/infer/roads_2d", b""), ("GET", "/model/roads_2d", b""),
                               ("DELETE", "/datastore/image?id=road_image", b""), ("POST", "/reload", b"")]:
        status, _, body = _send(f"{server.url}{path}", method, b"junk" if method in ("POST", "PUT") else b"")
        assert status == 404 and b"is not served by this app" in body and hint in body, (method, path, status, body)
    assert model.read_bytes() == before
    assert (workspace / "studies" / "road_image.nii.gz").is_file()


def test_params_never_name_a_file_or_weights(server, workspace, tmp_path):
    server.wait_for_info()
    bait = Path(server.tmp) / "bait.nii.gz"  # a file directly in the server's temporary folder
    bait.write_bytes((workspace / "studies" / "road_image.nii.gz").read_bytes())
    for params in ({"image": str(bait)}, {"model_filename": "../../../model.pt"}, {"label": str(bait)}, {"session": "x"}):
        status, _, body = _send(f"{server.url}/infer/roads_2d?image=road_image&output=json", "POST",
                                urllib.parse.urlencode({"params": json.dumps(params)}).encode(),
                                {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 400 and b"are not accepted" in body, (params, body)
    assert bait.is_file(), "a file named in params was deleted"
    bait.unlink()


def test_names_are_matched_whole_and_unknown_ids_are_404(server, workspace):
    server.wait_for_info()
    for url in (f"/datastore/image?image=road_image%0a", f"/datastore/image?image={'a' * 250}", "/infer/roads_2d%0a?image=road_image"):
        status, body = _request(f"{server.url}{url}", data=b"{}" if "infer" in url else None)
        assert status == 400 and b"plain name" in body, (url, status, body)
    for url in ("/datastore/image?image=no_such_image", "/datastore/label?label=no_such_image&tag=final"):
        status, body = _request(f"{server.url}{url}")
        assert status == 404 and b"no_such_image" in body and str(workspace).encode() not in body, (url, body)
    status, body = _request(f"{server.url}/infer/roads_2d?image=no_such_image", data=b"{}")
    assert status == 404 and b"no_such_image" in body and str(workspace).encode() not in body


def test_bad_inference_requests_are_4xx_with_a_message(server, workspace, tmp_path):
    server.wait_for_info()
    cases = [
        ([("params", None, b"{}"), ("file", "notes.nii.gz", b"not an image" * 100)], 400, b"not a readable image"),
        ([("params", None, b"{}"), ("file", "volume.nii.gz", _nifti_bytes(np.zeros((32, 32, 16), np.float32), tmp_path))], 400,
         b"takes 2D images"),
        ([("params", None, b'{"device": "cuda:7"}'), ("file", "i.nii.gz", _nifti_bytes(np.zeros((64, 64, 3), np.float32), tmp_path))],
         400, b"device must be one of"),
        ([("params", None, b"[1, 2]"), ("file", "i.nii.gz", _nifti_bytes(np.zeros((64, 64, 3), np.float32), tmp_path))], 400,
         b"params must be a JSON object"),
        ([("params", None, b"{}")], 400, b"give exactly one of"),
    ]
    for fields, expected, message in cases:
        status, body = _post_form(f"{server.url}/infer/roads_2d?output=json", fields)
        assert status == expected and message in body, (message, status, body)
    status, body = _post_form(f"{server.url}/infer/roads_2d?output=json",
                              [("params", None, b"null"), ("file", "i.nii.gz", _nifti_bytes(np.zeros((64, 64, 3), np.float32), tmp_path))])
    assert status == 200, body  # null params: no params
    for params, message in [({"max_epochs": 0}, b"max_epochs must be"), ({"max_epochs": "ten"}, b"max_epochs must be"),
                            ({"val_split": 1.5}, b"val_split must be"), ({"device": "tpu"}, b"device must be one of"),
                            ({"model_filename": "/etc/passwd"}, b"are not accepted"), ({"loss_name": "../x"}, b"loss_name must be one of"),
                            ({"loss_name": ["cbdice"]}, b"loss_name must be one of"), ({"gamma": 1.5}, b"gamma must be in [0, 1]"),
                            ({"gamma": "0.5"}, b"gamma must be a number")]:
        status, body = _request(f"{server.url}/train/roads_2d", data=json.dumps(params).encode())
        assert status == 400 and message in body, (params, status, body)
    time.sleep(0.5)
    assert [f for f in server.tmp.glob("contextloss-label-uploads-*/*")] == []  # every upload removed, refused or served


def test_uploads_are_read_whole_and_labels_checked(server, workspace, tmp_path):
    server.wait_for_info()
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 25000, 1))  # 3 GB of float32 declared
    header.set_data_dtype(np.float32)
    truncated = tmp_path / "big.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 1), np.float32), AFFINE), truncated)
    content = truncated.read_bytes()
    declared = bytearray(content[:352])
    declared[42:48] = np.array([30000, 25000, 1], dtype="<i2").tobytes()  # dim[1..3] of the NIfTI-1 header
    status, body = _upload(f"{server.url}/datastore/image?image=declared_big", "file", "big.nii", bytes(declared) + content[352:])
    assert status == 400 and b"more than the" in body, body
    good_label = (workspace / "studies" / "labels" / "final" / "road_train_0.nii.gz").read_bytes()
    status, body = _upload(f"{server.url}/datastore/label?image=road_image&tag=final", "label", "l.nii.gz",
                           _nifti_bytes(np.full((40, 40), 1, np.uint8), tmp_path))
    assert status == 400 and b"a label has the image's spatial shape" in body
    status, body = _upload(f"{server.url}/datastore/label?image=road_image&tag=final", "label", "l.nii.gz",
                           _nifti_bytes((np.asanyarray(nib.load(workspace / "studies/labels/final/road_train_0.nii.gz").dataobj) * 255).astype(np.uint8), tmp_path))
    assert status == 400 and b"must hold only 0 and 1" in body
    assert not (workspace / "studies" / "labels" / "final" / "road_image.nii.gz").exists()
    assert good_label == (workspace / "studies" / "labels" / "final" / "road_train_0.nii.gz").read_bytes()


@pytest.fixture(scope="module")
def enabled(tmp_path_factory):
    """A second server with sessions, model upload and the dataset zip enabled, a token, and a studies folder with
    links that leave it and data a careless user left there (a {0, 255} label)."""
    work = tmp_path_factory.mktemp("monailabel_enabled")
    copy_bundle("roads_2d", work / "bundles")
    write_synthetic_dataset("roads", work / "roads", n_train=5, n_test=1, size=64, progress=False)
    studies = work / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    outside = work / "outside"
    outside.mkdir()
    for i in range(2):
        image = np.asarray(nib.load(work / f"roads/imagesTr/roads_00{i}.nii.gz").dataobj)
        label = np.asarray(nib.load(work / f"roads/labelsTr/roads_00{i}.nii.gz").dataobj)
        nib.save(nib.Nifti1Image(image, AFFINE), studies / f"case_{i}.nii.gz")
        nib.save(nib.Nifti1Image(label * (255 if i == 1 else 1), AFFINE), studies / "labels" / "final" / f"case_{i}.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(nib.load(work / "roads/imagesTs/roads_005.nii.gz").dataobj), AFFINE), outside / "secret.nii.gz")
    (outside / "target.nii.gz").write_bytes(b"a file outside the studies folder")
    (studies / "linked.nii.gz").symlink_to(outside / "secret.nii.gz")
    shutil.copy(studies / "case_0.nii.gz", studies / "plain.nii.gz")
    (studies / "labels" / "final" / "plain.nii.gz").symlink_to(outside / "target.nii.gz")
    (work / "token").write_text(TOKEN + "\n")
    server = Server(work, work / "bundles", "roads_2d",
                    conf={"sessions": "true", "model_upload": "true", "dataset_zip": "true", "auth_token_file": work / "token"})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.logs()
            try:
                if _send(f"{server.url}/info/", "GET", headers=auth, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield server, work, auth
    finally:
        server.stop()


def test_a_token_is_required_when_configured(enabled):
    server, _, auth = enabled
    assert _send(f"{server.url}/info/", "GET")[0] == 401
    assert _send(f"{server.url}/info/", "GET", headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    assert _send(f"{server.url}/info/", "GET", headers=auth)[0] == 200


def test_links_that_leave_the_studies_folder_are_refused(enabled):
    server, work, auth = enabled
    for url in ("/datastore/image?image=linked", "/datastore/label?label=plain&tag=final"):
        status, _, body = _send(f"{server.url}{url}", "GET", headers=auth)
        assert status == 400 and b"leaves the studies folder" in body, (url, status, body)
    status, _, body = _send(f"{server.url}/infer/roads_2d?image=linked&output=json", "POST", b"", auth)
    assert status == 400 and b"leaves the studies folder" in body
    label = (work / "studies" / "labels" / "final" / "case_0.nii.gz").read_bytes()
    status, body = _post_form(f"{server.url}/datastore/label?image=plain&tag=final", [("params", None, b"{}"), ("label", "l.nii.gz", label)],
                              method="PUT", headers=auth)
    assert status == 400 and b"leaves the studies folder" in body
    assert (work / "outside" / "target.nii.gz").read_bytes() == b"a file outside the studies folder"
    status, _, archive = _send(f"{server.url}/datastore/dataset", "GET", headers=auth)
    assert status == 200
    (work / "dataset.zip").write_bytes(archive)
    names = zipfile.ZipFile(work / "dataset.zip").namelist()
    assert "image/case_0.nii.gz" in names and not any("linked" in n or "secret" in n or "plain" in n for n in names)


def test_session_archives_are_confined(enabled, tmp_path):
    server, work, auth = enabled
    config = work / "bundles" / "roads_2d" / "configs" / "train.yaml"
    before = config.read_bytes()
    for member in ("../../bundles/roads_2d/configs/train.yaml", str(work / "absolute.txt")):
        evil = tmp_path / "evil.tar"
        with tarfile.open(evil, "w") as tf:
            data = b"run:\n- $__import__('os').system('touch pwned')\n"
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        status, body = _post_form(f"{server.url}/session/?uncompress=true", [("files", "evil.tar", evil.read_bytes())], method="PUT", headers=auth)
        assert status == 400 and b"outside the destination folder" in body, (member, status, body)
    linked = tmp_path / "linked.tar"
    with tarfile.open(linked, "w") as tf:
        info = tarfile.TarInfo("image.nii.gz")
        info.type, info.linkname = tarfile.SYMTYPE, str(config)
        tf.addfile(info)
    status, body = _post_form(f"{server.url}/session/?uncompress=true", [("files", "linked.tar", linked.read_bytes())], method="PUT", headers=auth)
    assert status == 400 and b"is a link or special file" in body
    assert config.read_bytes() == before and not (work / "absolute.txt").exists() and not list(work.rglob("pwned"))
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tf:
        tf.add(work / "studies" / "case_0.nii.gz", arcname="case_0.nii.gz")
    status, body = _post_form(f"{server.url}/session/?uncompress=true", [("files", "good.tar", good.read_bytes())], method="PUT", headers=auth)
    assert status == 200, body


def test_uploaded_weights_must_fit_and_be_finite(enabled, tmp_path):
    server, work, auth = enabled
    model = work / "bundles" / "roads_2d" / "models" / "model.pt"
    before = model.read_bytes()
    state = torch.load(model, weights_only=True)
    nan_state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(nan_state, tmp_path / "nan.pt")
    for content, message in [(b"junk", b"not a readable PyTorch checkpoint"), ((tmp_path / "nan.pt").read_bytes(), b"NaN or infinite")]:
        status, body = _post_form(f"{server.url}/model/roads_2d", [("file", "model.pt", content)], method="PUT", headers=auth)
        assert status == 400 and message in body, (status, body)
        assert model.read_bytes() == before
    assert not list(model.parent.glob(".*.partial"))
    assert _send(f"{server.url}/model/roads_2d", "DELETE", headers=auth)[0] == 404 and model.read_bytes() == before
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "good.pt")
    status, body = _post_form(f"{server.url}/model/roads_2d", [("file", "model.pt", (tmp_path / "good.pt").read_bytes())],
                              method="PUT", headers=auth)
    assert status == 200 and model.read_bytes() == (tmp_path / "good.pt").read_bytes()


def test_training_checks_the_datastore_before_it_starts(enabled):
    """case_1's label is {0, 255}: the training request is refused naming it, and no model file changes."""
    server, work, auth = enabled
    models = work / "bundles" / "roads_2d" / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    status, _, body = _send(f"{server.url}/train/roads_2d?run_sync=true", "POST", json.dumps({"max_epochs": 1}).encode(),
                            {"Content-Type": "application/json", **auth})
    assert status == 400 and b"case_1.nii.gz must hold only 0 and 1" in body, body
    shutil.copy(work / "roads" / "labelsTr" / "roads_000.nii.gz", work / "studies" / "labels" / "final" / "case_1.nii.gz")
    label = np.asarray(nib.load(work / "roads" / "labelsTr" / "roads_000.nii.gz").dataobj)[:40, :40]
    nib.save(nib.Nifti1Image(label, AFFINE), work / "studies" / "labels" / "final" / "case_1.nii.gz")
    status, _, body = _send(f"{server.url}/train/roads_2d?run_sync=true", "POST", json.dumps({"max_epochs": 1}).encode(),
                            {"Content-Type": "application/json", **auth})
    assert status == 400 and b"the label's shape must be the image's spatial shape" in body and b"case_1" in body, body
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before


def test_a_server_on_all_interfaces_needs_a_token(workspace, tmp_path):
    """MONAI Label binds 0.0.0.0 by default: without a token (or --conf insecure true) the app stops at start-up,
    before the server binds its port."""
    copy_bundle("roads_2d", tmp_path / "bundles")
    (tmp_path / "studies").mkdir()
    exposed = Server(tmp_path, tmp_path / "bundles", "roads_2d", host="0.0.0.0")
    assert exposed.exit_code("0.0.0.0 without a token") != 0 and "refusing to serve on 0.0.0.0 without a token" in exposed.logs()
