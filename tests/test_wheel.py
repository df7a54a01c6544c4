"""The built distribution carries everything the bundles import: sdist + wheel built with ``python -m build``,
the wheel installed into a fresh virtual environment, one bundle stage run from a bundle folder copied
outside the repository (as a user who downloaded the bundle zip runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import contextloss_monai
from contextloss_monai.data.synthetic import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def test_wheel_runs_a_bundle_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    # sdist first, then the wheel built from the unpacked sdist (build's default): both must be complete
    run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)])
    version = contextloss_monai.__version__
    wheel = dist / f"contextloss_monai-{version}-py3-none-any.whl"
    sdist = dist / f"contextloss_monai-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file()
    packages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "contextloss_monai").rglob("*.py")}
    assert packages <= set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"setup.cfg", "pyproject.toml", "README.md", "LICENSE"} | packages <= names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)])

    outside = tmp_path / "downloaded"
    bundle = outside / "roads_2d"
    shutil.copytree(ROOT / "bundles" / "roads_2d", bundle, ignore=shutil.ignore_patterns("data", "logs", "eval", "models"))
    write_synthetic_dataset("roads", outside / "data", n_train=5, n_test=1, size=64, seed=1, progress=False)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    where = run([str(python), "-c", "import contextloss_monai; print(contextloss_monai.__file__)"], cwd=outside, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the installed wheel, not this checkout
    run([str(python), "-m", "monai.bundle", "run", "--config_file", "configs/train.yaml", "--dataset_dir", str(outside / "data"),
         "--patch_size", "[64,64]", "--pretrain_epochs", "1", "--val_interval", "1"], cwd=bundle, env=env)
    assert (bundle / "models" / "pretrained.pt").stat().st_size > 0
    assert (bundle / "logs" / "pretrain" / "training_log.csv").is_file()
