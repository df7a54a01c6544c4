"""A real MONAI Label server with the project's app: /info/, inference for a 2D and a 3D bundle, training.

The server runs as a subprocess on a free 127.0.0.1 port, from temporary copies of the app, the bundles
(random weights) and a studies folder, and is stopped by its PID (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip(
    "monailabel",
    reason="the MONAI Label extra is not installed: pip install -c constraints.txt -e '.[label]' && "
    "pip install -c constraints.txt --no-deps monailabel pydicom-seg",
)

from conftest import copy_bundle  # noqa: E402

from contextloss_monai.data.synthetic import write_synthetic_dataset  # noqa: E402
from contextloss_monai.label_app import find_bundles  # noqa: E402

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

    def __init__(self, workdir: Path, bundles_dir: Path, models: str) -> None:
        self.workdir, self.port = workdir, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = workdir / "app"
        shutil.copytree(ROOT / "apps" / "contextloss_label", app, dirs_exist_ok=True)
        self.log = workdir / "server.log"
        command = [
            sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(workdir / "studies"),
            "--conf", "bundles_dir", str(bundles_dir), "--conf", "models", models, "--host", "127.0.0.1", "--port", str(self.port),
        ]
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
    request = json.dumps({"max_epochs": 2, "val_split": 0.5, "device": "cpu"}).encode()
    status, body = _request(f"{server.url}/train/roads_2d?run_sync=true", data=request, timeout=600)
    assert status == 200, f"train: HTTP {status} {body[:500]!r}\n{server.logs()}"
    assert (models / "pretrained.pt").is_file(), "pretraining did not write models/pretrained.pt"
    assert (models / "model.pt").stat().st_mtime_ns != before, "fine-tuning did not replace models/model.pt"
    assert "CLoss fine-tuning" in server.logs() or "finetune_context" in server.logs()
    result = _infer(server, "roads_2d", "road_image", tmp_path)
    assert result.shape == (64, 64)


def test_a_bundle_without_weights_stops_the_server_at_start(workspace, tmp_path):
    bundles = tmp_path / "bundles"
    copy_bundle("roads_2d", bundles)
    copy_bundle("cement_lines_3d", bundles, weights=False)
    (tmp_path / "studies").mkdir()
    broken = Server(tmp_path, bundles, "roads_2d,cement_lines_3d")
    try:
        broken.process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server kept running with a bundle that has no models/model.pt:\n{broken.logs()}")
    finally:
        broken.stop()
    assert broken.process.returncode != 0
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
    assert status == 400 and b"image must be a plain name" in body
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
