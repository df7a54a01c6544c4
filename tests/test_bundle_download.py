"""A packaged bundle zip served over HTTP on 127.0.0.1, fetched with `monai.bundle download`, run from the copy."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import nibabel as nib
import pytest

from conftest import copy_bundle

from contextloss_monai.bundle.packaging import package_bundle
from contextloss_monai.data.synthetic import write_synthetic_dataset



def test_package_download_and_infer(tmp_path):
    bundle = copy_bundle("roads_2d", tmp_path / "src")  # random weights in models/model.pt
    (bundle / "models/pretrain_checkpoint_epoch=3.pt").write_bytes(b"training state, not for the zip")
    (bundle / "logs").mkdir()
    (bundle / "logs/run.log").write_text("not for the zip")

    archive, digest = package_bundle(bundle, tmp_path / "dist")
    version = json.loads((bundle / "configs/metadata.json").read_text())["version"]
    assert archive.name == f"roads_2d_v{version}.zip"
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest() in Path(f"{archive}.sha256").read_text()
    names = zipfile.ZipFile(archive).namelist()
    assert all(n.startswith("roads_2d/") for n in names)
    assert "roads_2d/configs/metadata.json" in names and "roads_2d/models/model.pt" in names
    assert not any("checkpoint_epoch" in n or "/logs/" in n for n in names)

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "dist"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
        done = subprocess.run(
            [sys.executable, "-m", "monai.bundle", "download", "--name", "roads_2d", "--bundle_dir", str(tmp_path / "downloaded"), "--url", url],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        server.shutdown()
        server.server_close()
    copy = tmp_path / "downloaded" / "roads_2d"
    assert (copy / "configs/inference.yaml").is_file() and (copy / "models/model.pt").is_file()

    data = tmp_path / "data"
    write_synthetic_dataset("roads", data, n_train=5, n_test=1, size=64, progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml", "--dataset_dir", str(data),
         "--patch_size", "[64,64]"],
        cwd=copy, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = list((copy / "eval/predictions").glob("*_seg.nii.gz"))
    assert len(predictions) == 1 and nib.load(predictions[0]).shape == (64, 64)


def _serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_verified_download_refuses_a_tampered_zip_and_installs_atomically(tmp_path):
    from contextloss_monai.bundle.packaging import download_bundle
    from contextloss_monai.cli import main

    bundle = copy_bundle("roads_2d", tmp_path / "src")
    archive, digest = package_bundle(bundle, tmp_path / "dist")
    installed_dir = tmp_path / "installed"
    server, base = _serve(tmp_path / "dist")
    try:
        url, sha_url = f"{base}/{archive.name}", f"{base}/{archive.name}.sha256"
        first = download_bundle(url, installed_dir, sha_url)
        assert first == installed_dir / "roads_2d" and (first / "models/model.pt").is_file()
        (first / "marker.txt").write_text("the copy installed before")

        # a tampered zip with the project's .sha256 beside it: refused, the installed copy untouched
        tampered = bytearray(archive.read_bytes())
        tampered[len(tampered) // 2] ^= 0xFF
        archive.write_bytes(bytes(tampered))
        with pytest.raises(ValueError, match="does not match the expected"):
            download_bundle(url, installed_dir, sha_url)
        assert (first / "marker.txt").is_file()
        assert main(["download", "--url", url, "--sha256", digest, "--bundle_dir", str(installed_dir)]) == 2
        assert sorted(p.name for p in installed_dir.iterdir()) == ["roads_2d"]  # no partial download or folder left

        # a good zip again: the older copy is replaced only by the complete new one
        package_bundle(bundle, tmp_path / "dist")
        assert download_bundle(url, installed_dir, str(Path(f"{archive}.sha256"))) == first
        assert not (first / "marker.txt").exists() and (first / "configs/metadata.json").is_file()
        assert sorted(p.name for p in installed_dir.iterdir()) == ["roads_2d"]
    finally:
        server.shutdown()
        server.server_close()


def test_download_refuses_zips_that_escape(tmp_path):
    from contextloss_monai.bundle.packaging import download_bundle

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("roads_2d/configs/metadata.json", "{}")
        zf.writestr("roads_2d/../../escaped.txt", "outside")
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="outside the destination folder"):
        download_bundle(str(evil), tmp_path / "installed", digest, name="roads_2d")
    assert not (tmp_path / "escaped.txt").exists() and list((tmp_path / "installed").iterdir()) == []
    with pytest.raises(ValueError, match="64-digit hex digest"):
        download_bundle(str(evil), tmp_path / "installed", "not-a-digest", name="roads_2d")
    with pytest.raises(ValueError, match="pass the bundle's name"):
        download_bundle(str(evil), tmp_path / "installed", digest)


def test_package_bundle_packs_regular_files_only(tmp_path):
    bundle = copy_bundle("roads_2d", tmp_path / "src")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the bundle")
    (bundle / "docs" / "linked.txt").symlink_to(secret)
    (bundle / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    (bundle / ".env").write_text("TOKEN=1")
    (bundle / "configs" / ".hidden").mkdir()
    (bundle / "configs" / ".hidden" / "x.yaml").write_text("a: 1")
    archive, _ = package_bundle(bundle, tmp_path / "dist")
    names = zipfile.ZipFile(archive).namelist()
    assert "roads_2d/configs/train.yaml" in names
    assert not any("linked" in n or ".env" in n or ".hidden" in n for n in names)
    assert all(n.startswith("roads_2d/") for n in names)
    with pytest.raises(ValueError, match="inside bundle_dir"):
        package_bundle(bundle, bundle / "dist")
    metadata = bundle / "configs" / "metadata.json"
    meta = json.loads(metadata.read_text())
    for version in ("../../x", "1.0", ""):
        metadata.write_text(json.dumps({**meta, "version": version}))
        with pytest.raises(ValueError, match="version must be a version"):
            package_bundle(bundle, tmp_path / "dist2")


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_caps_the_unpacked_size(tmp_path):
    """A small zip whose digest matches but which unpacks to far more (a zip bomb) is refused before unpacking."""
    from contextloss_monai.bundle.packaging import download_bundle

    bomb = tmp_path / "roads_2d_v0.2.0.zip"
    digest = _zip(bomb, {"roads_2d/configs/metadata.json": b"{}", "roads_2d/models/model.pt": bytes(64 << 20)})
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="more than the 16777216 allowed"):
        download_bundle(str(bomb), tmp_path / "installed", digest, max_unpacked_bytes=16 << 20)
    assert list((tmp_path / "installed").iterdir()) == []
    assert download_bundle(str(bomb), tmp_path / "installed", digest).is_dir()  # the default cap admits it


class _Endless(http.server.BaseHTTPRequestHandler):
    """Serves a body that never ends (bounded: it stops after 256 MiB or when the client hangs up)."""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(256):
                self.wfile.write(bytes(1 << 20))
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_download_stops_an_endless_download(tmp_path):
    from contextloss_monai.bundle.packaging import download_bundle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/roads_2d_v0.2.0.zip"
        with pytest.raises(ValueError, match="more than max_download_bytes 4194304 bytes; download stopped"):
            download_bundle(url, tmp_path / "installed", "0" * 64, max_download_bytes=4 << 20)
    finally:
        server.shutdown()
        server.server_close()
    assert list((tmp_path / "installed").iterdir()) == []  # the partial download is gone


def test_download_refuses_a_zip_of_another_bundle(tmp_path):
    """roads_2d_v0.2.0.zip whose top folder is vessap_3d would replace the installed vessap_3d: refused."""
    from contextloss_monai.bundle.packaging import download_bundle

    installed = tmp_path / "installed"
    (installed / "vessap_3d" / "configs").mkdir(parents=True)
    (installed / "vessap_3d" / "configs" / "metadata.json").write_text('{"version": "0.2.0"}')
    other = tmp_path / "roads_2d_v0.2.0.zip"
    digest = _zip(other, {"vessap_3d/configs/metadata.json": b'{"version": "9.9.9"}'})
    with pytest.raises(ValueError, match="a zip of bundle 'roads_2d' holds one top-level folder roads_2d/, found \\['vessap_3d'\\]"):
        download_bundle(str(other), installed, digest)
    assert (installed / "vessap_3d" / "configs" / "metadata.json").read_text() == '{"version": "0.2.0"}'
    assert sorted(p.name for p in installed.iterdir()) == ["vessap_3d"]


def test_reinstalling_never_leaves_the_bundle_missing(tmp_path):
    """While a bundle is installed over its older copy again and again, a reader polling its metadata never
    finds it missing (the install is one atomic swap, not two renames)."""
    from contextloss_monai.bundle.packaging import download_bundle

    archive = tmp_path / "roads_2d_v0.2.0.zip"
    digest = _zip(archive, {"roads_2d/configs/metadata.json": b"{}", "roads_2d/models/model.pt": os.urandom(1 << 20)})
    installed = tmp_path / "installed"
    metadata = installed / "roads_2d" / "configs" / "metadata.json"
    download_bundle(str(archive), installed, digest)
    missing, done = [], threading.Event()

    def poll():
        while not done.is_set():
            if not metadata.is_file():
                missing.append(time.monotonic())

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(20):
            download_bundle(str(archive), installed, digest)
    finally:
        done.set()
        reader.join()
    assert missing == []
    assert sorted(p.name for p in installed.iterdir()) == ["roads_2d"]


def test_a_killed_download_leaves_the_installed_copy_and_is_cleaned_up(tmp_path):
    """kill -9 of a download while it unpacks: the installed copy stays complete, and the next download removes
    the hidden staging folder and partial file the killed one left."""
    from contextloss_monai.bundle.packaging import download_bundle

    archive = tmp_path / "roads_2d_v0.2.0.zip"
    members = {"roads_2d/configs/metadata.json": b'{"version": "0.2.0"}'}
    members.update({f"roads_2d/models/part{i}.bin": os.urandom(4 << 20) for i in range(40)})
    digest = _zip(archive, members)
    installed = tmp_path / "installed"
    (installed / "roads_2d" / "configs").mkdir(parents=True)
    (installed / "roads_2d" / "configs" / "metadata.json").write_text('{"version": "old"}')
    code = ("import sys; from contextloss_monai.bundle.packaging import download_bundle; "
            "download_bundle(sys.argv[1], sys.argv[2], sys.argv[3])")
    process = subprocess.Popen([sys.executable, "-c", code, str(archive), str(installed), digest])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(installed.glob(".roads_2d.*.partial/roads_2d/models/part*.bin")):
            assert process.poll() is None, "the download finished before it could be killed; make the zip larger"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert (installed / "roads_2d" / "configs" / "metadata.json").read_text() == '{"version": "old"}'
    assert list(installed.glob(".roads_2d.*")), "nothing was left to clean: the kill came too late"
    download_bundle(str(archive), installed, digest)
    assert sorted(p.name for p in installed.iterdir()) == ["roads_2d"]
    assert (installed / "roads_2d" / "configs" / "metadata.json").read_text() == '{"version": "0.2.0"}'
