"""The demo and the benchmark, end to end in their smoke settings (tiny data, one fold, 2 epochs)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from conftest import logits_from

from contextloss_monai.cli import main
from contextloss_monai.experiment import Method, results_table
from contextloss_monai.layout import RunLayout


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_demo_smoke(tmp_path, capsys):
    assert main(["demo", "--smoke", "--out", str(tmp_path / "demo")]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    out = tmp_path / "demo"
    rows = _rows(out / "results.csv")
    assert [r["method"] for r in rows] == ["nnU-Net-style pretraining only", "Dice & CE", "CLoss (γ = 0.2)"]
    assert [int(r["steps"]) for r in rows[1:]] == [4, 4]  # --smoke: 4 fine-tuning steps per method, counted in the log
    assert "4 fine-tuning steps per method" in printed and "| optimizer steps |" in printed
    table = (out / "results.md").read_text()
    assert results_table(rows) in table  # the Markdown table is generated from the CSV rows
    assert "| method | n | Dice | clDice | e | e1 | e0 | e0-Gt | AGS |" in printed and str(out) in printed
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "training_curves.png" in pngs and any(p.startswith("gaps_") for p in pngs)
    assert all((out / p).stat().st_size > 10_000 for p in pngs)
    # quiet: the terminal shows the progress bars and the results; each stage's log lines are in its stage.log
    layout = RunLayout(out / "fold0")
    stages = ["pretrain", "finetune_dice_ce", "finetune_context_g0.2", "evaluate_pretrained", "evaluate_dice_ce", "evaluate_context_g0.2"]
    for stage in stages:
        assert "Engine run finished" in layout.stage_log(stage).read_text() or "Epoch[" in layout.stage_log(stage).read_text(), stage
    assert "Epoch[" in layout.stage_log("pretrain").read_text() and "input summary" in layout.stage_log("pretrain").read_text()
    for noise in ("Epoch[", "INFO", "input summary", "WARNING"):
        assert noise not in printed + captured.err, noise
    assert len(printed.splitlines()) < 60
    bars = {line.split(":")[0].strip() for line in captured.err.replace("\r", "\n").splitlines() if "%|" in line}
    assert {"pretrain", "finetune_dice_ce", "finetune_context_g0.2"} <= bars  # one bar per training stage, not one per epoch


def test_benchmark_smoke_and_resume(tmp_path, capsys):
    arguments = ["--bundle", "vessap_3d", "--out", str(tmp_path / "bench"), "--folds", "0", "--methods", "dice_ce", "thin_context",
                 "--gammas", "0.3", "--epochs", "2", "--finetune-steps", "3", "--n-train", "5", "--n-test", "1", "--size", "32",
                 "--override", "patch_size=[32,32,16]"]
    assert main(["benchmark", *arguments]) == 0
    out = tmp_path / "bench"
    rows = _rows(out / "results.csv")
    assert [r["key"] for r in rows] == ["pretrained", "dice_ce", "thin_context_g0.3"]
    assert all(float(r["seconds_per_epoch"]) > 0 for r in rows)
    # 4 training cases of fold 0 in batches of 2: 2 steps per epoch; 3 fine-tuning steps round up to 2 epochs
    assert [int(r["epochs"]) for r in rows] == [2, 2, 2] and [int(r["steps"]) for r in rows] == [4, 4, 4]
    table = (out / "results.md").read_text()
    assert "Thin CLoss (γ = 0.3)" in table and "| optimizer steps | seconds per epoch |" in table
    assert "| Thin CLoss (γ = 0.3) | e0-Gt | 1 |" in table  # the image-by-image comparison with Dice & CE
    # resumable: a second run repeats nothing (no stage reruns, the models keep their timestamps)
    stamps = {p: p.stat().st_mtime for p in (out / "fold0/models").glob("*.pt")}
    capsys.readouterr()
    archive = tmp_path / "archive"
    assert main(["benchmark", *arguments, "--archive", str(archive)]) == 0
    assert {p: p.stat().st_mtime for p in (out / "fold0/models").glob("*.pt")} == stamps
    assert _rows(out / "results.csv") == rows
    # --archive: the tables and the per-image metrics behind them, nothing else
    assert (archive / "results.md").read_text() == table and _rows(archive / "results.csv") == rows
    assert {p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file()} == {"results.csv", "results.md"} | {
        f"fold0/eval/{r['key']}/{name}" for r in rows for name in ("metrics.csv", "summary.json")}
    assert f"archived 8 files to {archive}" in capsys.readouterr().out
    # a fine-tuning stopped after its epoch-2 checkpoint, before its model was written, and asked for one more
    # epoch (5 steps: 3 epochs): it continues at epoch 3 from the checkpoint instead of starting afresh
    layout, key = RunLayout(out / "fold0"), "thin_context_g0.3"
    layout.model(key).unlink()
    log = layout.training_log(RunLayout.stage_of(key))
    before = _rows(log)
    steps = arguments.index("--finetune-steps") + 1
    capsys.readouterr()
    assert main(["benchmark", *arguments[:steps], "5", *arguments[steps + 1:], "--verbose"]) == 0
    after = _rows(log)
    # --verbose: the stage's log lines on the terminal as well as in its stage.log
    assert "finetune_thin_context_g0.3 epoch 3/3" in capsys.readouterr().out
    assert "finetune_thin_context_g0.3 epoch 3/3" in layout.stage_log("finetune_thin_context_g0.3").read_text()
    assert [int(r["epoch"]) for r in after] == [1, 2, 3] and after[:2] == before  # epochs 1-2 not trained again
    assert layout.model(key).is_file()


def test_results_table_mean_and_std():
    rows = [{"method": "A", "dice": "0.5", "ags": "90"}, {"method": "A", "dice": "0.7", "ags": "80"}, {"method": "B", "dice": "1", "ags": ""}]
    table = results_table(rows, columns=(("dice", "Dice"), ("ags", "AGS")))
    assert "| A | 2 | 60.000 ± 10.000 | 85.000 ± 5.000 |" in table
    assert "| B | 1 | 100.000 | n/a |" in table


def test_method_labels():
    assert Method(None).label == "nnU-Net-style pretraining only" and Method(None).key == "pretrained"
    assert Method("context_dice", 0.5).label == "CLoss (Dice) (γ = 0.5)" and Method("context", 0.2).key == "context_g0.2"
    with pytest.raises(ValueError, match="loss_name"):
        Method("unknown")


def test_mask_gradients_split_a_gap_and_a_false_blob():
    """A line predicted with a 6-column gap plus a false 5x5 blob: the restricted CE pushes each pixel of M
    about equally (so by pixel count), the restricted Dice pushes almost only on the gap."""
    from contextloss_monai.experiment.mask_gradients import restricted_gradient_split as split

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
    """contextloss bench-gpu (the paper's Table 7 on a GPU) checked on tiny shapes on the CPU: every loss row,
    ratios to Dice & CE of exactly 1 for Dice & CE itself."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "contextloss_monai", "bench-gpu", "--smoke", "--device", "cpu", "--markdown"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 2D (smoke)") or line.startswith("| 3D (smoke)")]
    assert len(rows) == 16
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert [c[1] for c in cells[:8]] == ["Dice & CE", "CLoss (soft)", "CLoss (exact)", "Thin CLoss", "clDice (50)", "compound clDice",
                                         "Skeleton Recall", "cbDice (10)"]
    assert all(c[3] == "1.00" for c in cells if c[1] == "Dice & CE") and all(float(c[2]) > 0 for c in cells)


def test_benchmark_tables_share_one_layout():
    """The benchmarks' tables: Markdown rows as the docs quote them; plain text in aligned columns, numbers (and
    ratios, and "—") right-aligned, text left-aligned; a row of the wrong length is refused."""
    from contextloss_monai.benchmarks.table import format_table

    header = ("shape", "loss", "ms", "x DiceCE")
    rows = [("2x2x64x64", "DiceCELoss", "3.5", "1.00x"), ("2x2x64x64", "ContextLoss (soft)", "31.0", "—")]
    assert format_table(header, rows, markdown=True).splitlines() == [
        "| shape | loss | ms | x DiceCE |", "|---|---|---|---|",
        "| 2x2x64x64 | DiceCELoss | 3.5 | 1.00x |", "| 2x2x64x64 | ContextLoss (soft) | 31.0 | — |"]
    lines = format_table(header, rows, markdown=False).splitlines()
    assert lines == ["shape      loss                  ms  x DiceCE",
                     "2x2x64x64  DiceCELoss           3.5     1.00x",
                     "2x2x64x64  ContextLoss (soft)  31.0         —"]
    assert format_table(header, [], markdown=False) == "shape  loss  ms  x DiceCE"
    with pytest.raises(ValueError, match="4 cells"):
        format_table(header, [("2x2x64x64", "DiceCELoss")], markdown=True)


def test_paired_comparison_counts_and_wilcoxon(tmp_path):
    """Per-image differences pooled over folds: better / worse in the metric's own direction, Wilcoxon p from SciPy."""
    from scipy.stats import wilcoxon

    from contextloss_monai.experiment import paired_comparison
    from contextloss_monai.layout import RunLayout
    from contextloss_monai.utils import write_csv_rows

    base = {0: [0.5, 1.0, 0.0, 0.25], 1: [0.75, 0.5, 0.5, 1.0]}
    other = {0: [0.25, 0.5, 0.0, 0.5], 1: [0.25, 0.25, 0.0, 0.5]}  # e0-Gt lower on 6 images, higher on 1, equal on 1
    for fold in (0, 1):
        for key, values in (("dice_ce", base[fold]), ("context_g0.2", other[fold])):
            path = RunLayout(tmp_path / f"fold{fold}").image_metrics(key)
            path.parent.mkdir(parents=True)
            write_csv_rows(path, [{"image": f"case{i}", "e0_gt": v, "ags": 90.0} for i, v in enumerate(values)])
    rows = [{"fold": f, "key": k, "method": m} for f in (0, 1) for k, m in (("dice_ce", "Dice & CE"), ("context_g0.2", "CLoss"))]
    table = paired_comparison(tmp_path, rows, metrics=(("e0_gt", "e0-Gt", True), ("ags", "AGS", False)))
    differences = [o - b for f in (0, 1) for o, b in zip(other[f], base[f])]
    p_value = wilcoxon(differences).pvalue
    assert f"| CLoss | e0-Gt | 8 | {sum(differences) / 8:+.3f} | 6 / 1 / 1 | {p_value:.3g} |" in table
    assert "| CLoss | AGS | 8 | +0.000 | 0 / 0 / 8 | n/a |" in table
    assert paired_comparison(tmp_path, [r for r in rows if r["key"] != "dice_ce"]) == ""


def test_label_gaps_finds_the_gap_and_whether_it_closed():
    import numpy as np

    from contextloss_monai.experiment.figures import label_gaps

    label = np.zeros((32, 64), dtype=bool)
    label[14:17, 2:62] = True
    baseline = label.copy()
    baseline[:, 20:28] = False  # an 8-column gap
    baseline[:, 45:50] = False  # a 5-column gap
    closs = baseline.copy()
    closs[:, 20:28] = label[:, 20:28]  # closes the first
    gaps = label_gaps(label, baseline, closs)
    assert [g["length"] for g in gaps] == [8, 5]
    assert [g["closed"] for g in gaps] == [True, False]
    assert abs(gaps[0]["centre"][1] - 23.5) < 0.6 and abs(gaps[0]["centre"][0] - 15) < 0.6
    assert label_gaps(label, label, label) == []


def test_calibration_script_reports_the_pretrained_row_against_the_paper(tmp_path, capsys):
    """contextloss calibrate: pretraining only, one row per bundle with the paper's AGS band."""
    out = tmp_path / "calibration"
    arguments = ["--bundles", "vessap_3d", "--out", str(out), "--epochs", "1", "--n-train", "5", "--n-test", "1", "--size", "32",
                 "--override", "patch_size=[32,32,16]"]
    # a kind measured by an earlier run stays in the table, its text values formatted like fresh numbers
    earlier = {"bundle": "roads_2d", "paper_ags": 86.46, "band": 5.0, "ags": 83.38, "in_band": True, "paper_e0_gt": 0.699,
               "e0_gt": 1.5, "e0": 2.531, "e1": 0.229, "dice": 79.92, "epochs": 100, "steps": 500, "seconds": 340}
    from contextloss_monai.utils import write_csv_rows

    write_csv_rows(out / "calibration.csv", [earlier])
    assert main(["calibrate", *arguments]) == 0
    stored, row = _rows(out / "calibration.csv")
    assert stored == {k: str(v) for k, v in earlier.items()}
    assert "| roads_2d | 86.5 ± 5 | 83.38 | yes | 0.699 | 1.500 | 2.531 | 0.229 | 79.92 | 500 |" in (out / "calibration.md").read_text()
    assert row["bundle"] == "vessap_3d" and float(row["paper_ags"]) == 96.0 and int(row["steps"]) == 2
    assert row["in_band"] == str(abs(float(row["ags"]) - 96.0) <= 3.0)
    assert (out / "vessap_3d/fold0/models/pretrained.pt").is_file()
    assert not any((out / "vessap_3d/fold0/models").glob("model_*.pt"))  # nothing fine-tuned
    assert "| vessap_3d | 96.0 ± 3 |" in capsys.readouterr().out
    assert float(row["seconds"]) > 0  # the pretraining's training time from its log ...
    assert main(["calibrate", *arguments]) == 0  # ... kept when the finished run is re-read
    assert _rows(out / "calibration.csv") == [stored, row]


def test_parse_overrides_reads_yaml_values_and_names_a_bad_item():
    from contextloss_monai.experiment import parse_overrides

    assert parse_overrides(["patch_size=[64,64]", "amp=false", "x=a=b"]) == {"patch_size": [64, 64], "amp": False, "x": "a=b"}
    with pytest.raises(ValueError, match=r"--override takes KEY=VALUE items, got \['patch_size'\]"):
        parse_overrides(["patch_size"])


def test_runtime_table_lists_each_folds_epochs_and_steps(tmp_path):
    """Pretraining that stops early in one fold shows both lengths, not the first fold's."""
    from contextloss_monai.experiment.results import write_results
    from contextloss_monai.layout import RunLayout

    rows = [
        {"fold": f, "method": "pretrained", "key": RunLayout.PRETRAINED_KEY, "epochs": e, "steps": s, "seconds_per_epoch": 1.0}
        for f, e, s in ((0, 100, 500), (1, 65, 325), (2, 100, 500))
    ]
    _, md_path = write_results(rows, tmp_path)
    assert "| Dice & CE (pretraining) | 65, 100 | 325, 500 | 1.000 ± 0.000 |" in md_path.read_text()


def test_csv_rows_read_back_as_text_with_the_union_of_columns(tmp_path):
    from contextloss_monai.utils import read_csv_rows, write_csv_rows

    write_csv_rows(tmp_path / "t.csv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "val_dice": 0.25, "loss": 0.4}])
    assert read_csv_rows(tmp_path / "t.csv") == [{"epoch": "1", "loss": "0.5", "val_dice": ""},
                                                 {"epoch": "2", "loss": "0.4", "val_dice": "0.25"}]
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_csv_rows(tmp_path / "missing.csv")
    assert read_csv_rows(tmp_path / "t.csv", ("epoch", "val_dice")) != []
    with pytest.raises(ValueError, match=r"t.csv lacks the column\(s\) \['seconds'\]"):
        read_csv_rows(tmp_path / "t.csv", ("epoch", "seconds"))


def test_merge_results_extends_the_stored_table(tmp_path):
    """A later benchmark run into the same folder adds its methods and folds; a rerun pair replaces its row."""
    from contextloss_monai.experiment.results import merge_results
    from contextloss_monai.utils import write_csv_rows

    def row(fold, key, dice):
        return {"fold": fold, "method": key.upper(), "key": key, "dice": dice}

    assert merge_results(tmp_path, [row(0, "dice_ce", 0.5)]) == [row(0, "dice_ce", 0.5)]  # nothing stored yet
    write_csv_rows(tmp_path / "results.csv", [row(0, "dice_ce", 0.5), row(0, "context_g0.2", 0.6), row(1, "dice_ce", 0.7)])
    merged = merge_results(tmp_path, [row(1, "dice_ce", 0.8), row(0, "context_g0.1", 0.9)])
    assert [(int(r["fold"]), r["key"], float(r["dice"])) for r in merged] == [
        (0, "dice_ce", 0.5), (0, "context_g0.2", 0.6), (1, "dice_ce", 0.8), (0, "context_g0.1", 0.9)]
    write_csv_rows(tmp_path / "results.csv", [{"image": "a", "dice": 0.5}])
    with pytest.raises(ValueError, match=r"results.csv lacks the column\(s\) \['fold', 'key'\]"):
        merge_results(tmp_path, [row(0, "dice_ce", 0.5)])
    (tmp_path / "results.csv").write_text("image,dice\r\n")  # a header without rows is checked too
    with pytest.raises(ValueError, match=r"results.csv lacks the column\(s\) \['fold', 'key'\]"):
        merge_results(tmp_path, [row(0, "dice_ce", 0.5)])
    write_csv_rows(tmp_path / "results.csv", [])  # no header at all: nothing stored
    assert merge_results(tmp_path, [row(0, "dice_ce", 0.5)]) == [row(0, "dice_ce", 0.5)]


def test_retina_fov_example_leaves_nothing_outside_and_changes_nothing_inside(tmp_path, capsys):
    import json

    import nibabel as nib
    import numpy as np

    out = tmp_path / "retina"
    assert main(["retina-fov", "--out", str(out), "--epochs", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["predictions"]["with_fov"]["foreground_outside"] == 0
    assert 0.5 < summary["field_of_view"]["pixels_inside"] / summary["field_of_view"]["pixels"] < 0.9  # the aperture
    before, after = (np.asanyarray(nib.load(out / name / "skimage_retina_seg.nii.gz").dataobj) for name in ("without_fov", "with_fov"))
    assert before.shape == after.shape == (1411, 1411)
    # the field of view only sets the outside to background: inside, the same prediction
    assert not (after > before).any()
    assert summary["predictions"]["with_fov"]["foreground_inside"] == summary["predictions"]["without_fov"]["foreground_inside"]
    assert (out / "retina_fov.png").stat().st_size > 10_000
    assert "with_fov: 0 foreground pixels outside the field of view" in capsys.readouterr().out
    assert main(["retina-fov", "--out", str(out), "--margin", "-1"]) == 2  # bad input: one line, exit 2


def test_loss_benchmark_times_only_the_losses_asked_for_beside_dice_ce(capsys):
    """contextloss bench-losses --losses: DiceCELoss (the ratios' base) and the named loss only, its ratio to
    DiceCE from the same run, no clDice ratio without clDice; an unknown name is refused naming --losses."""
    from contextloss_monai.benchmarks import losses as bench

    assert bench.main(["--shapes", "2d", "--losses", "ContextLoss (soft)", "--markdown"]) == 0
    out = capsys.readouterr().out
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| 2x2x")]
    assert [row[1] for row in rows] == ["DiceCELoss", "ContextLoss (soft)"]
    assert rows[0][4] == "1.00" and float(rows[1][4]) == pytest.approx(float(rows[1][2]) / float(rows[0][2]), rel=0.05)
    assert rows[0][5] == rows[1][5] == "—"
    assert "2x2x512x512: ContextLoss = " in out and "clDice" not in out.split("ContextLoss = ")[1]
    with pytest.raises(SystemExit):
        bench.main(["--losses", "FocalLoss"])
    assert "--losses" in capsys.readouterr().err
