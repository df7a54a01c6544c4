"""A packaged bundle zip served over HTTP on 127.0.0.1, fetched with `monai.bundle download`, run from the copy."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import nibabel as nib

from conftest import copy_bundle

from contextloss_monai.experiment.packaging import package_bundle
from contextloss_monai.data.synthetic import write_synthetic_dataset



def test_package_download_and_infer(tmp_path):
    bundle = copy_bundle("roads_2d", tmp_path / "src")  # random weights in models/model.pt
    (bundle / "models/pretrain_checkpoint_epoch=3.pt").write_bytes(b"training state, not for the zip")
    (bundle / "logs").mkdir()
    (bundle / "logs/run.log").write_text("not for the zip")

    archive, digest = package_bundle(bundle, tmp_path / "dist")
    assert archive.name == "roads_2d_v0.1.0.zip"
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
