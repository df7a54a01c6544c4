"""The built distribution carries everything the bundles and the command line need: sdist + wheel built with
``python -m build``, the wheel installed into a fresh virtual environment; from an empty folder, every
``contextloss`` subcommand's help, ``make-synthetic``, the bundles rendered from the packaged template and the
demo's stages through the console command, and one bundle stage run from a bundle folder copied outside the
repository (as a user who downloaded the bundle zip runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import contextloss_monai
from contextloss_monai.cli import COMMANDS
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
    template = {p.relative_to(ROOT).as_posix() for p in (ROOT / "contextloss_monai" / "bundle" / "template").rglob("*") if p.is_file()}
    assert template and template <= set(zipfile.ZipFile(wheel).namelist()) and template <= names

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

    # the console command, from an empty folder: every subcommand's help, synthetic data, the bundles, the demo's stages
    empty = tmp_path / "empty"
    empty.mkdir()
    contextloss = str(venv / "bin" / "contextloss")
    listing = run([contextloss, "--help"], cwd=empty, env=env).stdout
    assert all(f"  {name} " in listing for name in COMMANDS)
    assert run([contextloss, "--version"], cwd=empty, env=env).stdout.strip() == version
    for name in COMMANDS:
        assert f"usage: contextloss {name}" in run([contextloss, name, "--help"], cwd=empty, env=env).stdout, name
    run([contextloss, "make-synthetic", "--kind", "sheets3d", "--out", "data3d", "--n-train", "5", "--n-test", "1", "--size", "16"], cwd=empty, env=env)
    assert (empty / "data3d" / "dataset.json").is_file()
    assert "match the template" in run([contextloss, "render-bundles", "--out", str(ROOT / "bundles"), "--check"], cwd=empty, env=env).stdout
    done = run([contextloss, "demo", "--smoke", "--out", "demo", "--device", "cpu"], cwd=empty, env=env)
    assert "| CLoss (γ = 0.2) | 1 |" in done.stdout and "Epoch[" not in done.stdout + done.stderr
    assert (empty / "demo" / "bundles" / "roads_2d" / "configs" / "finetune.yaml").read_text() == \
        (ROOT / "bundles" / "roads_2d" / "configs" / "finetune.yaml").read_text()
    assert (empty / "demo" / "fold0" / "models" / "model_context_g0.2.pt").stat().st_size > 0
    assert "Epoch[" in (empty / "demo" / "fold0" / "logs" / "finetune_context_g0.2" / "stage.log").read_text()
    assert sorted(p.name for p in empty.iterdir()) == ["data3d", "demo"]  # nothing written outside the folders asked for
    failed = subprocess.run([contextloss, "benchmark", "--bundle", "no_such_bundle", "--out", "x"], cwd=empty, env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "neither a bundle folder" in failed.stderr
