"""The paper's tables from an experiment's rows: Table 1 (mean ± std per method), a paired per-image comparison
with Dice & CE, and Table 7 (steps and seconds per epoch per loss), as ``results.csv`` and ``results.md``."""

from __future__ import annotations

import math
import os
from pathlib import Path

from contextloss_monai.layout import RunLayout
from contextloss_monai.method import ALTERNATIVE_LOSS_NAMES
from contextloss_monai.utils import atomic_file, merge_csv_rows, read_csv_rows, write_csv_rows, write_text_atomic

__all__ = ["PAIRED_METRICS", "PAPER_COLUMNS", "RESULTS_CSV", "RESULTS_INDEX", "RESULTS_MD", "archive_results", "results_index", "epoch_seconds", "mean_std", "merge_results", "paired_comparison", "results_table", "stage_steps", "training_rows", "write_results"]

#: an experiment's tables, in its output folder: one row per fold and method, and the paper's tables from them
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"

#: summary.json metric → column of the paper's Table 1
PAPER_COLUMNS = (("dice", "Dice"), ("cldice", "clDice"), ("betti_e", "e"), ("betti_e1", "e1"), ("betti_e0", "e0"),
                 ("e0_gt", "e0-Gt"), ("ags", "AGS"))


def training_rows(work_dir, stage: str) -> list[dict]:
    """The rows of ``stage``'s ``training_log.csv`` (one per epoch; empty without a log)."""
    path = RunLayout(work_dir).training_log(stage)
    if not path.is_file():
        return []
    return read_csv_rows(path)


def epoch_seconds(work_dir, stage: str) -> list[float]:
    """Training seconds of each epoch of ``stage`` from its ``training_log.csv`` (empty without a log)."""
    return [float(row["seconds"]) for row in training_rows(work_dir, stage)]


def stage_steps(work_dir, stage: str) -> int | None:
    """The optimizer steps ``stage`` trained (its log's last ``steps``; ``None`` without a log or that column)."""
    rows = training_rows(work_dir, stage)
    return int(rows[-1]["steps"]) if rows and rows[-1].get("steps") else None


def mean_std(values: list[float]) -> str:
    """``"mean ± std"`` (population std) of the finite values, ``"mean"`` for one, ``"n/a"`` for none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{mean:.3f} ± {std:.3f}" if len(values) > 1 else f"{mean:.3f}"


#: metrics of the paired comparison and whether lower is better
PAIRED_METRICS = (("e0_gt", "e0-Gt", True), ("ags", "AGS", False), ("dice", "Dice", False))


def _per_image(out_dir, fold: int, key: str) -> dict[str, dict]:
    """The per-image metrics of ``key`` in fold ``fold`` of the run ``out_dir``, by image ({} when not evaluated)."""
    path = RunLayout.of_fold(out_dir, fold).image_metrics(key)
    return {row["image"]: row for row in read_csv_rows(path, ("image",))} if path.is_file() else {}


def _paired_lines(label: str, pairs: list[tuple[dict, dict]], metrics) -> list[str]:
    """The table lines of one method: per metric, the differences ``other − base`` over the images both tables of each
    ``(base, other)`` pair hold, their mean, better / worse / equal and the two-sided Wilcoxon signed-rank p-value."""
    from scipy.stats import wilcoxon

    lines = []
    for metric, title, lower_is_better in metrics:
        differences = []
        for base, other in pairs:
            differences += [float(other[i][metric]) - float(base[i][metric]) for i in sorted(base.keys() & other.keys())
                            if base[i].get(metric) not in (None, "") and other[i].get(metric) not in (None, "")]
        differences = [d for d in differences if math.isfinite(d)]
        if not differences:
            continue
        sign = -1.0 if lower_is_better else 1.0
        better, worse = sum(sign * d > 0 for d in differences), sum(sign * d < 0 for d in differences)
        p_value = wilcoxon(differences).pvalue if better + worse else math.nan
        scale = 100.0 if metric in ("dice", "cldice") else 1.0
        lines.append(f"| {label} | {title} | {len(differences)} | {scale * sum(differences) / len(differences):+.3f} | "
                     f"{better} / {worse} / {len(differences) - better - worse} | {'n/a' if math.isnan(p_value) else f'{p_value:.3g}'} |")
    return lines


def paired_comparison(out_dir, rows: list[dict], baseline_key: str = "dice_ce", metrics=PAIRED_METRICS, methods=None) -> str:
    """Markdown table: each fine-tuned method against ``baseline_key`` image by image, pooled over folds.

    For every test image of every fold the difference ``method - baseline`` of a metric (per-image values from
    ``fold<k>/eval/<key>/metrics.csv`` in ``out_dir``): the mean difference, how many images got better / worse /
    stayed equal (the direction each metric counts as better), and the two-sided Wilcoxon signed-rank p-value
    (SciPy, zero differences dropped; ``n/a`` when every difference is zero). ``p < 0.05`` is what lets
    "better" mean more than noise; with 6–10 test images per fold it needs several folds. ``methods``: the method
    keys to compare (default: every fine-tuned one).

    Returns:
        the table, or an empty string when the rows hold no ``baseline_key`` method.
    """
    keys = list(dict.fromkeys(r["key"] for r in rows))
    if baseline_key not in keys:
        return ""
    labels = {r["key"]: r["method"] for r in rows}
    folds = sorted({int(r["fold"]) for r in rows})
    tables = {(fold, key): _per_image(out_dir, fold, key) for fold in folds for key in keys}  # each metrics.csv read once
    lines = ["| method vs " + labels[baseline_key] + " | metric | images | mean difference | better / worse / equal | Wilcoxon p |",
             "|---|---|---|---|---|---|"]
    for key in keys:
        if key in (baseline_key, RunLayout.PRETRAINED_KEY) or (methods is not None and key not in methods):
            continue
        lines += _paired_lines(labels[key], [(tables[fold, baseline_key], tables[fold, key]) for fold in folds], metrics)
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def compare_runs(baseline_dir: str | os.PathLike, other_dir: str | os.PathLike, metrics=PAIRED_METRICS) -> str:
    """Markdown table: every fine-tuned method that two runs (experiment folders or archives) both hold, the second run
    against the first image by image over their common folds — two settings of one protocol, e.g. an ablation run
    into two folders from the same pretrained checkpoints and data (the columns of :func:`paired_comparison`).

    Raises:
        FileNotFoundError: naming a run without ``results.csv``.
        ValueError: when the runs share no fine-tuned method and fold.
    """
    runs = []
    for run in (Path(baseline_dir), Path(other_dir)):
        if not (run / RESULTS_CSV).is_file():
            raise FileNotFoundError(f"{run / RESULTS_CSV} does not exist: compare finished runs (contextloss benchmark --out or --archive).")
        runs.append({(int(r["fold"]), r["key"]): r["method"] for r in read_csv_rows(run / RESULTS_CSV, ("fold", "key", "method"))})
    common = [pair for pair in runs[0] if pair in runs[1] and pair[1] != RunLayout.PRETRAINED_KEY]
    if not common:
        raise ValueError(f"{baseline_dir} and {other_dir} share no fine-tuned method and fold.")
    lines = [f"| method ({Path(other_dir).name} vs {Path(baseline_dir).name}) | metric | images | mean difference | better / worse / equal | Wilcoxon p |",
             "|---|---|---|---|---|---|"]
    for key in dict.fromkeys(key for _, key in common):
        folds = sorted(fold for fold, k in common if k == key)
        pairs = [(_per_image(baseline_dir, fold, key), _per_image(other_dir, fold, key)) for fold in folds]
        lines += _paired_lines(runs[0][folds[0], key], pairs, metrics)
    return "\n".join(lines) + "\n"


def compare_runs_main(argv: list[str] | None = None) -> int:
    """``contextloss compare-runs BASELINE OTHER``: print :func:`compare_runs`."""
    import argparse

    parser = argparse.ArgumentParser(prog="contextloss compare-runs", description="Compare two runs of one protocol image by image "
                                     "(e.g. an ablation's two settings, each a contextloss benchmark --out folder or archive): "
                                     "every fine-tuned method both hold, the second against the first, paired Wilcoxon tests.")
    parser.add_argument("baseline", help="the first run (the differences are other − baseline)")
    parser.add_argument("other", help="the second run")
    args = parser.parse_args(argv)
    print(compare_runs(args.baseline, args.other), end="")
    return 0


def results_table(rows: list[dict], columns=PAPER_COLUMNS) -> str:
    """Markdown table in the paper's Table 1 layout from result rows (``method``, one key per metric,
    any number of folds / seeds per method): mean ± standard deviation per method, rows in first-seen order.
    Dice and clDice are shown in %, as in the paper."""
    methods: dict[str, list[dict]] = {}
    for row in rows:
        methods.setdefault(row["method"], []).append(row)
    scale = {"dice": 100.0, "cldice": 100.0}
    lines = ["| method | n | " + " | ".join(title for _, title in columns) + " |", "|---|---|" + "---|" * len(columns)]
    for method, group in methods.items():
        cells = [mean_std([float(r[key]) * scale.get(key, 1.0) if r.get(key) not in (None, "") else math.nan for r in group])
                 for key, _ in columns]
        lines.append(f"| {method} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _distinct(rows: list[dict], column: str) -> str:
    """The distinct whole numbers of ``column`` over ``rows``, ascending and comma-separated (pretraining may
    stop early in some folds), ``"n/a"`` when no row has one."""
    return ", ".join(str(v) for v in sorted({int(r[column]) for r in rows if r.get(column) not in (None, "")})) or "n/a"


def merge_results(out_dir, rows: list[dict]) -> list[dict]:
    """``rows`` added to the rows already in ``out_dir/results.csv`` (:func:`~contextloss_monai.utils.merge_csv_rows`
    on fold and method key): a later run of the benchmark into the same output folder (one more method or fold)
    extends its tables instead of replacing them, and a (fold, method) run again replaces its row."""
    return merge_csv_rows(Path(out_dir) / RESULTS_CSV, rows, ("fold", "key"))


def _compared_with_closs(out_dir, rows: list[dict]) -> str:
    """The alternatives to CLoss (:data:`~contextloss_monai.method.ALTERNATIVE_LOSS_NAMES`) against CLoss image by
    image (:func:`paired_comparison` with the first plain CLoss method of the rows as baseline), as a report section;
    empty when the rows hold no such method or no CLoss."""
    loss_of = {r["key"]: r["key"].split("_g")[0] for r in rows}
    closs = next((key for key, loss in loss_of.items() if loss == "context"), None)
    alternatives = [key for key, loss in loss_of.items() if loss in ALTERNATIVE_LOSS_NAMES]
    if closs is None or not alternatives:
        return ""
    table = paired_comparison(out_dir, rows, closs, methods=alternatives)
    return f"Image by image against CLoss (all folds):\n\n{table}\n" if table else ""


def write_results(rows: list[dict], out_dir, title: str = "") -> tuple[Path, Path]:
    """``results.csv`` (one row per fold and method) and ``results.md`` (Table 1 layout, mean ± std over
    folds; the paired per-image comparison with Dice & CE, :func:`paired_comparison`; the optimizer steps and
    seconds per epoch of each loss — the paper's Table 7), generated from the rows and the folds' per-image
    metrics in ``out_dir``."""
    out_dir = Path(out_dir)
    csv_path = write_csv_rows(out_dir / RESULTS_CSV, rows)
    paired = paired_comparison(out_dir, rows)
    paired_closs = _compared_with_closs(out_dir, rows)
    runtime = ["| loss | epochs | optimizer steps | seconds per epoch |", "|---|---|---|---|"]
    seen: dict[str, list[dict]] = {}
    for row in rows:
        seen.setdefault(row["method"], []).append(row)
    for method, group in seen.items():
        name = "Dice & CE (pretraining)" if group[0]["key"] == RunLayout.PRETRAINED_KEY else method
        runtime.append(f"| {name} | {_distinct(group, 'epochs')} | {_distinct(group, 'steps')} | {mean_std([float(r['seconds_per_epoch']) for r in group])} |")
    md_path = write_text_atomic(
        out_dir / RESULTS_MD,
        (f"# {title}\n\n" if title else "") + results_table(rows)
        + "\nDice and clDice in %; e, e1, e0, e0-Gt lower is better; AGS (%) higher is better. Mean ± std over folds;"
        " fine-tuned methods with the topological post-processing.\n\n"
        + (f"Image by image (all folds):\n\n{paired}\n" if paired else "")
        + paired_closs
        + "\n".join(runtime) + "\n",
    )
    return csv_path, md_path


def archive_results(out_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy what an experiment's tables are computed from into ``dest``, in the experiment folder's own layout:
    ``results.csv``, ``results.md`` and, for every fold and method of ``results.csv``, the evaluation's per-image
    ``metrics.csv`` and its ``summary.json``. Models, checkpoints, data and predictions stay out (a few kB per
    fold and method), so the archive can be committed beside the README that quotes it and outlives the run
    folder; :func:`write_results` on the archive's rows and folder rebuilds its ``results.md``. Each file is
    written atomically; other files in ``dest`` are left as they are.

    Args:
        out_dir: the experiment's output folder (``contextloss benchmark --out``).
        dest: the archive folder (created when missing).

    Returns:
        the archived files, ``results.csv`` and ``results.md`` first.

    Raises:
        FileNotFoundError: ``out_dir`` without ``results.csv``, or a fold and method of it without its
            per-image metrics or summary (naming the file).
        ValueError: ``dest`` is ``out_dir``.
    """
    out_dir, dest = Path(out_dir), Path(dest)
    if dest.resolve() == out_dir.resolve():
        raise ValueError(f"dest must differ from out_dir, got {dest} for both.")
    table = out_dir / RESULTS_CSV
    if not table.is_file():
        raise FileNotFoundError(f"{table} does not exist: out_dir must be a finished experiment folder (contextloss benchmark --out).")
    sources = [table, out_dir / RESULTS_MD]
    for row in read_csv_rows(table, ("fold", "key")):
        layout = RunLayout.of_fold(out_dir, int(row["fold"]))
        sources += [layout.image_metrics(row["key"]), layout.summary(row["key"])]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{out_dir} lacks {missing}: every fold and method of {RESULTS_CSV} needs its evaluation.")
    archived = [dest / source.relative_to(out_dir) for source in sources]
    for source, target in zip(sources, archived):
        with atomic_file(target) as stream:
            stream.write(source.read_bytes())
    return archived


#: the index page of a folder of archives (``docs/results/README.md``)
RESULTS_INDEX = "README.md"


def results_index(results_dir: str | os.PathLike) -> str:
    """The index page of a folder of archives (:func:`archive_results`): one row per archive ``<run>/`` with its
    title, folds, methods and test images, linking its ``results.md``; generated from the archives alone.

    Raises:
        FileNotFoundError: when ``results_dir`` holds no archive (no ``<run>/results.csv``).
    """
    results_dir = Path(results_dir)
    archives = sorted(p.parent for p in results_dir.glob(f"*/{RESULTS_CSV}"))
    if not archives:
        raise FileNotFoundError(f"results_dir {results_dir} holds no archive (<run>/{RESULTS_CSV}).")
    lines = ["# Archived results", "",
             f"One folder per run, as `contextloss benchmark --archive DIR` copied it: `{RESULTS_CSV}` (one row per fold and method),",
             f"`{RESULTS_MD}` (the tables) and, per fold and method, the per-image `fold<N>/eval/<key>/metrics.csv` and `summary.json`",
             "the tables are computed from. [docs/results.md](../results.md) discusses each run; its figures are rebuilt from these files by",
             "`tests/test_results_archive.py`. Run keys follow the naming rule of the version that wrote them (runs before 0.3.0",
             "name CLoss's default reading `_hadamard`); the method labels are the same under both rules.",
             "This page is generated from the archives: `contextloss results-index docs/results`.", "",
             "| run | title | folds | methods | test images per fold | tables |", "|---|---|---|---|---|---|"]
    for archive in archives:
        rows = read_csv_rows(archive / RESULTS_CSV, ("fold", "method", "key"))
        title = (archive / RESULTS_MD).read_text().splitlines()[0].lstrip("# ").strip() if (archive / RESULTS_MD).is_file() else ""
        folds = sorted({int(r["fold"]) for r in rows})
        methods = list(dict.fromkeys(r["method"] for r in rows))
        images = sorted({len(read_csv_rows(RunLayout.of_fold(archive, int(r["fold"])).image_metrics(r["key"]))) for r in rows})
        lines.append(f"| `{archive.name}` | {title} | {', '.join(map(str, folds))} | {len(methods)}: {'; '.join(methods)} | "
                     f"{', '.join(map(str, images))} | [{RESULTS_MD}]({archive.name}/{RESULTS_MD}) |")
    others = sorted(p for p in results_dir.iterdir() if p.is_dir() and not (p / RESULTS_CSV).is_file())
    if others:
        lines += ["", "Other archives (what one command wrote: its summary and figures, not a benchmark's tables):", ""]
        lines += [f"- `{p.name}`: " + ", ".join(f"[{f.name}]({p.name}/{f.name})" for f in sorted(p.iterdir()) if f.is_file()) for p in others]
    return "\n".join(lines) + "\n"


def results_index_main(argv: list[str] | None = None) -> int:
    """``contextloss results-index DIR``: write (or ``--check``) ``DIR/README.md``, the index of the archives in ``DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="contextloss results-index", description="Write the index page of a folder of result "
                                     "archives (contextloss benchmark --archive DIR/<run>) as DIR/README.md.")
    parser.add_argument("results_dir", help="the folder of archives, e.g. docs/results")
    parser.add_argument("--check", action="store_true", help="compare only: exit 1 when the page differs from what the archives give")
    args = parser.parse_args(argv)
    page = results_index(args.results_dir)  # no archive: contextloss's one-line error
    path = Path(args.results_dir) / RESULTS_INDEX
    if args.check:
        current = path.read_text() if path.is_file() else ""
        print(f"{path} {'matches' if current == page else 'differs from'} the archives")
        return 0 if current == page else 1
    write_text_atomic(path, page)
    print(path)
    return 0
