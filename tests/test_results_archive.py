"""The committed result archives: what the benchmark copies, and that docs/results.md quotes what they rebuild to."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contextloss_monai.experiment import RESULTS_CSV, RESULTS_MD, archive_results, results_index, write_results
from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import read_csv_rows, write_csv_rows

ROOT = Path(__file__).resolve().parents[1]
ARCHIVES = sorted(p.parent for p in (ROOT / "docs" / "results").glob(f"*/{RESULTS_CSV}"))


def _experiment(out: Path) -> list[dict]:
    """A finished two-fold experiment folder with models, data and predictions beside the tables."""
    rows = []
    for fold in (0, 1):
        layout = RunLayout.of_fold(out, fold)
        for key, method, shift in (("dice_ce", "Dice & CE", 0.0), ("context_g0.2", "CLoss", 0.5)):
            write_csv_rows(layout.image_metrics(key), [{"image": f"case{i}", "e0_gt": i + shift, "ags": 90.0 + i * shift, "dice": 0.8}
                                                       for i in range(3)])
            layout.summary(key).write_text('{"ags": 91.0}')
            layout.prediction(key, "case0").write_bytes(b"nifti")
            layout.model(key).parent.mkdir(parents=True, exist_ok=True)
            layout.model(key).write_bytes(b"weights")
            rows.append({"fold": fold, "method": method, "key": key, "dice": 0.8, "e0_gt": 1.0 + shift, "ags": 91.0,
                         "epochs": 84, "steps": 504, "seconds_per_epoch": 2.5 + shift})
    (out / "data").mkdir()
    (out / "data" / "dataset.json").write_text("{}")
    write_results(rows, out, title="toy: 2 fold(s) (0, 1)")
    return rows


def _rebuilt_report(archive: Path, tmp_path: Path, title: str) -> str:
    """``results.md`` as :func:`write_results` rebuilds it from a copy of ``archive`` (its rows and per-image metrics)."""
    rebuilt = tmp_path / f"rebuilt_{archive.name}"
    shutil.copytree(archive, rebuilt)
    (rebuilt / RESULTS_MD).unlink()
    write_results(read_csv_rows(rebuilt / RESULTS_CSV, ("fold", "key", "method")), rebuilt, title=title)
    return (rebuilt / RESULTS_MD).read_text()


def test_archive_holds_the_tables_and_per_image_metrics_only_and_rebuilds_the_report(tmp_path):
    out, dest = tmp_path / "run", tmp_path / "archive"
    _experiment(out)
    archived = archive_results(out, dest)
    relative = sorted(str(p.relative_to(dest)) for p in archived)
    expected = [RESULTS_CSV, RESULTS_MD] + [f"fold{f}/eval/{k}/{n}" for f in (0, 1) for k in ("context_g0.2", "dice_ce")
                                            for n in ("metrics.csv", "summary.json")]
    assert relative == sorted(expected)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(expected)  # no model, data, prediction
    assert all((dest / r).read_bytes() == (out / r).read_bytes() for r in relative)  # byte for byte ...
    assert b"\r\n" in (dest / RESULTS_CSV).read_bytes()  # ... so the csv module's line ends too
    rebuilt = _rebuilt_report(dest, tmp_path, title="toy: 2 fold(s) (0, 1)")
    assert rebuilt == (out / RESULTS_MD).read_text()
    assert "| CLoss | e0-Gt | 6 | +0.500 | 0 / 6 / 0 |" in rebuilt  # the paired test from the archive


def test_the_alternatives_to_closs_are_also_compared_with_closs(tmp_path):
    """Skeleton Recall and cbDice get a second paired table, against CLoss; the paper's baselines (clDice) do not."""
    out = tmp_path / "run"
    rows = _experiment(out)
    for fold in (0, 1):
        layout = RunLayout.of_fold(out, fold)
        for key, method, shift in (("skeleton_recall_g1", "Skeleton Recall (γ = 1)", -0.25), ("cldice_g0.2", "clDice", 1.0)):
            write_csv_rows(layout.image_metrics(key), [{"image": f"case{i}", "e0_gt": i + shift, "ags": 90.0, "dice": 0.8}
                                                       for i in range(3)])
            rows.append({"fold": fold, "method": method, "key": key, "dice": 0.8, "e0_gt": 1.0 + shift, "ags": 91.0,
                         "epochs": 84, "steps": 504, "seconds_per_epoch": 2.5})
    write_results(rows, out)
    report = (out / RESULTS_MD).read_text()
    against_closs = report.split("Image by image against CLoss (all folds):")[1].split("| loss |")[0]
    assert "| method vs CLoss |" in against_closs
    assert "| Skeleton Recall (γ = 1) | e0-Gt | 6 | -0.750 | 6 / 0 / 0 |" in against_closs  # 0.5 − (−0.25) lower
    assert "| clDice |" not in against_closs and "| clDice | e0-Gt | 6 | +1.000 | 0 / 6 / 0 |" in report
    write_results(rows[:4], out)  # Dice & CE and CLoss only: no such section
    assert "against CLoss" not in (out / RESULTS_MD).read_text()


def test_compare_runs_pairs_the_images_of_two_runs_method_by_method(tmp_path):
    """Two settings of one protocol in two folders: each method of the second against the same method of the first."""
    from contextloss_monai.experiment.results import compare_runs

    full, own = tmp_path / "full", tmp_path / "own"
    _experiment(full)
    rows = _experiment(own)
    for fold in (0, 1):  # the second setting lowers CLoss's e0-Gt on every image by 0.25, leaves Dice & CE as it was
        path = RunLayout.of_fold(own, fold).image_metrics("context_g0.2")
        write_csv_rows(path, [{**row, "e0_gt": float(row["e0_gt"]) - 0.25} for row in read_csv_rows(path)])
    table = compare_runs(full, own)
    assert table.startswith("| method (own vs full) |")
    assert "| CLoss | e0-Gt | 6 | -0.250 | 6 / 0 / 0 | 0.0312 |" in table
    assert "| Dice & CE | e0-Gt | 6 | +0.000 | 0 / 0 / 6 | n/a |" in table
    write_csv_rows(own / RESULTS_CSV, [r for r in rows if r["key"] == "context_g0.2" and r["fold"] == 1])
    assert "| CLoss | e0-Gt | 3 |" in compare_runs(full, own)  # the common folds only
    with pytest.raises(FileNotFoundError, match="results.csv does not exist"):
        compare_runs(full, tmp_path / "missing")


def test_archive_names_what_is_missing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match=r"run/results.csv does not exist"):
        archive_results(out, tmp_path / "archive")
    _experiment(out)
    with pytest.raises(ValueError, match="dest must differ from out_dir"):
        archive_results(out, out)
    RunLayout.of_fold(out, 1).image_metrics("dice_ce").unlink()
    with pytest.raises(FileNotFoundError, match=r"fold1/eval/dice_ce/metrics.csv"):
        archive_results(out, tmp_path / "archive")
    assert not (tmp_path / "archive").exists()  # checked before anything is written


@pytest.mark.skipif(not ARCHIVES, reason="no committed result archive")
@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: p.name)
def test_committed_archive_rebuilds_its_report_and_the_docs_quote_it(archive, tmp_path):
    """Each committed archive's report is what its rows and per-image metrics give, and docs/results.md quotes
    every row of its tables: a figure from an archived run is checkable without the run folder."""
    report = (archive / RESULTS_MD).read_text()
    assert _rebuilt_report(archive, tmp_path, title=report.splitlines()[0].removeprefix("# ")) == report
    results = (ROOT / "docs" / "results.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert rows and [line for line in rows if line not in results] == []
    assert f"docs/results/{archive.name}" in results  # the page says where the archive is


def test_results_index_page_is_generated_from_the_archives(tmp_path, capsys):
    """docs/results/README.md lists every archive with what it holds; it is what the archives give, and a new archive
    (or a changed one) makes the check fail until the page is written again."""
    from contextloss_monai.cli import main

    page = (ROOT / "docs" / "results" / "README.md").read_text()
    assert page == results_index(ROOT / "docs" / "results")
    for archive in ARCHIVES:
        rows = read_csv_rows(archive / RESULTS_CSV)
        line = next(line for line in page.splitlines() if line.startswith(f"| `{archive.name}` |"))
        assert f"| {len({r['method'] for r in rows})}: " in line and f"]({archive.name}/{RESULTS_MD})" in line
    copy = tmp_path / "results"
    shutil.copytree(ROOT / "docs" / "results", copy)
    assert main(["results-index", str(copy), "--check"]) == 0
    _experiment(tmp_path / "run")
    archive_results(tmp_path / "run", copy / "toy")
    assert main(["results-index", str(copy), "--check"]) == 1
    assert main(["results-index", str(copy)]) == 0 and main(["results-index", str(copy), "--check"]) == 0
    assert "| `toy` | toy: 2 fold(s) (0, 1) | 0, 1 | 2: Dice & CE; CLoss | 3 |" in (copy / "README.md").read_text()
    assert main(["results-index", str(tmp_path / "empty")]) == 2


def test_the_deep_supervision_ablation_in_the_docs_is_what_compare_runs_gives():
    """docs/results.md quotes every row of the own-against-full comparison of the two committed roads archives."""
    from contextloss_monai.experiment.results import compare_runs

    table = compare_runs(ROOT / "docs/results/topology_losses_roads_2d", ROOT / "docs/results/ablation_own_roads_2d")
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    results = (ROOT / "docs" / "results.md").read_text()
    assert len(rows) == 6 and [line for line in rows if line not in results] == []
