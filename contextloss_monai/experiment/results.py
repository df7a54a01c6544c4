"""The paper's tables from an experiment's rows: Table 1 (mean ± std per method) and Table 7 (seconds
per epoch per loss), as ``results.csv`` and ``results.md``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import write_csv_rows, write_text_atomic

__all__ = ["PAPER_COLUMNS", "epoch_seconds", "mean_std", "results_table", "write_results"]

#: summary.json metric → column of the paper's Table 1
PAPER_COLUMNS = (("dice", "Dice"), ("cldice", "clDice"), ("betti_e", "e"), ("betti_e1", "e1"), ("betti_e0", "e0"),
                 ("e0_gt", "e0-Gt"), ("ags", "AGS"))


def epoch_seconds(work_dir, stage: str) -> list[float]:
    """Training seconds of each epoch of ``stage`` from its ``training_log.csv`` (empty without a log)."""
    path = RunLayout(work_dir).training_log(stage)
    if not path.is_file():
        return []
    with path.open() as handle:
        return [float(row["seconds"]) for row in csv.DictReader(handle)]


def mean_std(values: list[float]) -> str:
    """``"mean ± std"`` (population std) of the finite values, ``"mean"`` for one, ``"n/a"`` for none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{mean:.3f} ± {std:.3f}" if len(values) > 1 else f"{mean:.3f}"


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


def write_results(rows: list[dict], out_dir, title: str = "") -> tuple[Path, Path]:
    """``results.csv`` (one row per fold and method) and ``results.md`` (Table 1 layout, mean ± std over
    folds, plus the seconds per epoch of each loss — the paper's Table 7), both generated from the rows."""
    out_dir = Path(out_dir)
    csv_path = write_csv_rows(out_dir / "results.csv", rows)
    runtime = ["| loss | epochs | seconds per epoch |", "|---|---|---|"]
    seen: dict[str, list[dict]] = {}
    for row in rows:
        seen.setdefault(row["method"], []).append(row)
    for method, group in seen.items():
        name = "Dice & CE (pretraining)" if group[0]["key"] == RunLayout.PRETRAINED_KEY else method
        runtime.append(f"| {name} | {group[0]['epochs']} | {mean_std([float(r['seconds_per_epoch']) for r in group])} |")
    md_path = write_text_atomic(
        out_dir / "results.md",
        (f"# {title}\n\n" if title else "") + results_table(rows)
        + "\nDice and clDice in %; e, e1, e0, e0-Gt lower is better; AGS (%) higher is better. Mean ± std over folds;"
        " fine-tuned methods with the topological post-processing.\n\n" + "\n".join(runtime) + "\n",
    )
    return csv_path, md_path
