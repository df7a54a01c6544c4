"""The demo and the benchmark, end to end in their smoke settings (tiny data, one fold, 2 epochs)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import logits_from

from contextloss_monai.experiment import Method, results_table

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_demo_smoke(tmp_path, capsys):
    assert _script("demo").main(["--smoke", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "demo"
    rows = _rows(out / "results.csv")
    assert [r["method"] for r in rows] == ["nnU-Net-style pretraining only", "Dice & CE", "CLoss (γ = 0.2)"]
    table = (out / "results.md").read_text()
    assert results_table(rows) in table  # the Markdown table is generated from the CSV rows
    assert "| method | n | Dice | clDice | e | e1 | e0 | e0-Gt | AGS |" in printed and str(out) in printed
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "training_curves.png" in pngs and any(p.startswith("gaps_") for p in pngs)
    assert all((out / p).stat().st_size > 10_000 for p in pngs)


def test_benchmark_smoke_and_resume(tmp_path, capsys):
    arguments = ["--bundle", "vessap_3d", "--out", str(tmp_path / "bench"), "--folds", "0", "--methods", "dice_ce", "thin_context",
                 "--gammas", "0.3", "--epochs", "2", "--n-train", "5", "--n-test", "1", "--size", "32",
                 "--override", "patch_size=[32,32,16]", "finetune_fraction=1.0"]
    benchmark = _script("benchmark")
    assert benchmark.main(arguments) == 0
    out = tmp_path / "bench"
    rows = _rows(out / "results.csv")
    assert [r["key"] for r in rows] == ["pretrained", "dice_ce", "thin_context_g0.3"]
    assert all(float(r["seconds_per_epoch"]) > 0 for r in rows)
    assert [int(r["epochs"]) for r in rows] == [2, 2, 2]  # the epochs that ran (finetune_fraction=1.0), not the 5 % rule
    table = (out / "results.md").read_text()
    assert "Thin CLoss (γ = 0.3)" in table and "seconds per epoch" in table
    # resumable: a second run repeats nothing (no stage reruns, the models keep their timestamps)
    stamps = {p: p.stat().st_mtime for p in (out / "fold0/models").glob("*.pt")}
    capsys.readouterr()
    assert benchmark.main(arguments) == 0
    assert {p: p.stat().st_mtime for p in (out / "fold0/models").glob("*.pt")} == stamps
    assert _rows(out / "results.csv") == rows


def test_results_table_mean_and_std():
    rows = [{"method": "A", "dice": "0.5", "ags": "90"}, {"method": "A", "dice": "0.7", "ags": "80"}, {"method": "B", "dice": "1", "ags": ""}]
    table = results_table(rows, columns=(("dice", "Dice"), ("ags", "AGS")))
    assert "| A | 2 | 60.000 ± 10.000 | 85.000 ± 5.000 |" in table
    assert "| B | 1 | 100.000 | n/a |" in table


def test_method_labels():
    assert Method(None).label == "nnU-Net-style pretraining only" and Method(None).key == "pretrained"
    assert Method("context_dice", 0.5).label == "CLoss (Dice) (γ = 0.5)" and Method("context", 0.2).key == "context_g0.2"
    with pytest.raises(KeyError):
        Method("unknown").label


def test_mask_gradients_split_a_gap_and_a_false_blob():
    """A line predicted with a 6-column gap plus a false 5x5 blob: the restricted CE pushes each pixel of M
    about equally (so by pixel count), the restricted Dice pushes almost only on the gap."""
    split = _script("mask_gradients").restricted_gradient_split
    label = torch.zeros(1, 1, 32, 64)
    label[..., 10:13, :] = 1
    pred = label.clone()
    pred[..., 10:13, 30:36] = 0  # gap: 18 pixels of the label missed
    pred[..., 22:27, 5:10] = 1  # false blob: 25 pixels
    logits = logits_from(pred, scale=2.0)
    out = split(logits, label)
    assert out["fn_pixels"] == 18 and out["fp_pixels"] == 25
    ce_share = out["ce_fn"] / (out["ce_fn"] + out["ce_fp"])
    dice_share = out["dice_fn"] / (out["dice_fn"] + out["dice_fp"])
    assert ce_share == pytest.approx(18 / 43, abs=0.02)
    assert dice_share > 0.9
    with pytest.raises(ValueError, match="logits must be"):
        split(logits[:, :1], label)


def test_gpu_benchmark_script_runs_in_smoke_mode():
    """scripts/bench_gpu.py (the paper's Table 7 on a GPU) checked on tiny shapes on the CPU: every loss row,
    ratios to Dice & CE of exactly 1 for Dice & CE itself."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--smoke", "--device", "cpu", "--markdown"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 2D (smoke)") or line.startswith("| 3D (smoke)")]
    assert len(rows) == 12
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert [c[1] for c in cells[:6]] == ["Dice & CE", "CLoss (soft)", "CLoss (exact)", "Thin CLoss", "clDice (50)", "compound clDice"]
    assert all(c[3] == "1.00" for c in cells if c[1] == "Dice & CE") and all(float(c[2]) > 0 for c in cells)
