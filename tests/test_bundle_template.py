"""The four bundles are rendered from one template, shipped in the package (``contextloss_monai/bundle/template``):
the committed folders match it, a change to the template is one edit that every bundle follows, and the
experiment commands render the bundle they run (so they run from a wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contextloss_monai.bundle.render import TEMPLATE, bundle_folder

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ("cement_lines_3d", "hrf_retina_2d", "roads_2d", "vessap_3d")


def render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contextloss_monai", "render-bundles", *args], capture_output=True, text=True, timeout=120)


def test_committed_bundles_match_the_template():
    done = render("--check", "--out", str(ROOT / "bundles"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 bundles" in done.stdout and "match the template" in done.stdout


def test_experiments_run_the_rendered_bundle_or_a_folder_given(tmp_path):
    rendered = bundle_folder("roads_2d", tmp_path)
    assert rendered == (tmp_path / "bundles" / "roads_2d").absolute()
    committed = sorted(p.relative_to(ROOT / "bundles" / "roads_2d") for p in (ROOT / "bundles" / "roads_2d").rglob("*") if p.is_file())
    assert sorted(p.relative_to(rendered) for p in rendered.rglob("*") if p.is_file()) == committed
    assert all((rendered / r).read_text() == (ROOT / "bundles" / "roads_2d" / r).read_text() for r in committed)
    assert bundle_folder(ROOT / "bundles" / "vessap_3d", tmp_path / "other") == ROOT / "bundles" / "vessap_3d"  # a folder: itself
    assert not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="neither a bundle folder"):
        bundle_folder("roads_3d", tmp_path)


def test_one_template_edit_reaches_every_bundle(tmp_path):
    template, out = tmp_path / "template", tmp_path / "bundles"
    shutil.copytree(TEMPLATE, template)
    for name in BUNDLES:
        shutil.copytree(ROOT / "bundles" / name, out / name, ignore=shutil.ignore_patterns("data", "logs", "eval", "models"))
    finetune = template / "configs" / "finetune.yaml.j2"
    text = finetune.read_text()
    assert text.count("finetune_learning_rate: 0.0001\n") == 1
    finetune.write_text(text.replace("finetune_learning_rate: 0.0001\n", "finetune_learning_rate: 0.0005\n"))

    stale = render("--check", "--template", str(template), "--out", str(out))
    assert stale.returncode == 1
    assert sorted(line.strip() for line in stale.stdout.splitlines()[1:]) == sorted(f"{n}/configs/finetune.yaml" for n in BUNDLES)
    done = render("--template", str(template), "--out", str(out))
    assert done.returncode == 0, done.stderr
    for name in BUNDLES:
        assert yaml.safe_load((out / name / "configs/finetune.yaml").read_text())["finetune_learning_rate"] == 0.0005
        # and nothing else changed: the other files still equal the committed ones
        for path in (ROOT / "bundles" / name).rglob("*"):
            relative = path.relative_to(ROOT / "bundles" / name)
            if path.is_file() and relative.parts[0] in ("configs", "docs", "LICENSE") and relative.name != "finetune.yaml":
                assert (out / name / relative).read_text() == path.read_text(), relative
    assert render("--check", "--template", str(template), "--out", str(out)).returncode == 0


def test_bundle_specific_values_land_where_they_belong():
    configs = {name: ROOT / "bundles" / name / "configs" for name in BUNDLES}
    train = {name: yaml.safe_load((c / "train.yaml").read_text()) for name, c in configs.items()}
    assert {n: t["network_def"]["in_channels"] for n, t in train.items()} == {
        "cement_lines_3d": 1, "hrf_retina_2d": 3, "roads_2d": 3, "vessap_3d": 2}
    assert {n: t["synthetic_kind"] for n, t in train.items()} == {
        "cement_lines_3d": "sheets3d", "hrf_retina_2d": "retina", "roads_2d": "roads", "vessap_3d": "vessels3d"}
    for name, t in train.items():
        dims = t["network_def"]["spatial_dims"]
        assert len(t["patch_size"]) == dims and all(len(k) == dims for k in t["network_def"]["kernel_size"])
        inference = yaml.safe_load((configs[name] / "inference.yaml").read_text())
        assert inference["network_def"] == t["network_def"] and inference["patch_size"] == t["patch_size"]


def test_a_missing_value_is_an_error(tmp_path):
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template)
    spec = yaml.safe_load((template / "bundles.yaml").read_text())
    del spec["bundles"]["roads_2d"]["patch_size"]
    (template / "bundles.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    done = render("--check", "--template", str(template), "--out", str(tmp_path / "out"))
    assert done.returncode != 0 and "patch_size" in done.stderr
