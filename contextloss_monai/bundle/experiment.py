"""Running a bundle's stages from Python — the paper's experiment: pretrain once, fine-tune with each
method from the same checkpoint, evaluate (with Algorithm 2 for the fine-tuned methods), tabulate.

Every stage goes through ``monai.bundle.run`` with the bundle's own configs; outputs go to a work
folder (``bundle_root`` override), never into the bundle. Finished stages are skipped, so an
interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Method",
    "PAPER_COLUMNS",
    "epoch_seconds",
    "evaluate",
    "finetune",
    "methods_for",
    "pretrain",
    "results_table",
    "run_experiment",
    "run_stage",
    "write_results",
]

#: summary.json metric → column of the paper's Table 1
PAPER_COLUMNS = (("dice", "Dice"), ("cldice", "clDice"), ("betti_e", "e"), ("betti_e1", "e1"), ("betti_e0", "e0"),
                 ("e0_gt", "e0-Gt"), ("ags", "AGS"))


@dataclass(frozen=True)
class Method:
    """One row of the paper's tables: a fine-tuning loss (``None``: pretraining only) and its γ."""

    loss_name: str | None
    gamma: float = 0.2

    @property
    def key(self) -> str:
        return "pretrained" if self.loss_name is None else f"{self.loss_name}_g{self.gamma:g}"

    @property
    def label(self) -> str:
        from contextloss_monai.bundle.losses import LOSS_NAMES

        if self.loss_name is None:
            return "nnU-Net-style pretraining only"
        name = LOSS_NAMES[self.loss_name]
        return name if self.loss_name == "dice_ce" else f"{name} (γ = {self.gamma:g})"


def run_stage(bundle_dir: str | os.PathLike, configs: list[str], work_dir: str | os.PathLike, **overrides) -> None:
    """``monai.bundle.run`` of ``configs/<c>.yaml`` (merged in order) with ``bundle_root = work_dir``."""
    from monai.bundle import run

    bundle_dir = Path(bundle_dir)
    run(
        config_file=[str(bundle_dir / "configs" / f"{c}.yaml") for c in configs],
        meta_file=str(bundle_dir / "configs" / "metadata.json"),
        logging_file=str(bundle_dir / "configs" / "logging.conf"),
        bundle_root=str(work_dir),
        **overrides,
    )


def pretrain(bundle_dir, work_dir, epochs: int, **overrides) -> Path:
    """Pretraining with Dice & CE → ``work_dir/models/pretrained.pt`` (skipped when it exists)."""
    model = Path(work_dir) / "models" / "pretrained.pt"
    if not model.is_file():
        run_stage(bundle_dir, ["train"], work_dir, pretrain_epochs=epochs, **overrides)
    return model


def finetune(bundle_dir, work_dir, method: Method, pretrain_epochs: int, **overrides) -> Path:
    """Fine-tuning from ``pretrained.pt`` with ``method`` → ``models/model_<key>.pt`` (skipped when it exists)."""
    model = Path(work_dir) / "models" / f"model_{method.key}.pt"
    if not model.is_file():
        run_stage(bundle_dir, ["train", "finetune"], work_dir, pretrain_epochs=pretrain_epochs, loss_name=method.loss_name,
                  gamma=method.gamma, stage=f"finetune_{method.key}", model_filename=model.name, **overrides)
    return model


def evaluate(bundle_dir, work_dir, method: Method, **overrides) -> dict:
    """Evaluate ``method``'s model on the test list: pretraining only without, fine-tuned methods with
    the topological post-processing (as in the paper's tables). Returns ``eval/<key>/summary.json``."""
    summary = Path(work_dir) / "eval" / method.key / "summary.json"
    if not summary.is_file():
        if method.loss_name is None:
            configs, model = ["inference", "evaluate"], "pretrained.pt"
        else:
            configs, model = ["inference", "inference_topo", "evaluate"], f"model_{method.key}.pt"
        run_stage(bundle_dir, configs, work_dir, model_path=str(Path(work_dir) / "models" / model),
                  evaluation_name=method.key, **overrides)
    return json.loads(summary.read_text())


def epoch_seconds(work_dir, stage: str) -> list[float]:
    """Training seconds of each epoch of ``stage`` from its ``training_log.csv`` (empty without a log)."""
    path = Path(work_dir) / "logs" / stage / "training_log.csv"
    if not path.is_file():
        return []
    with path.open() as handle:
        return [float(row["seconds"]) for row in csv.DictReader(handle)]


def _mean_std(values: list[float]) -> str:
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
        cells = [_mean_std([float(r[key]) * scale.get(key, 1.0) if r.get(key) not in (None, "") else math.nan for r in group])
                 for key, _ in columns]
        lines.append(f"| {method} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def methods_for(names: list[str], gammas: list[float]) -> list[Method]:
    """Pretraining only, then each named fine-tuning method (``dice_ce`` once, the others per γ)."""
    methods = [Method(None)]
    for name in names:
        methods += [Method(name, 0.0)] if name == "dice_ce" else [Method(name, g) for g in gammas]
    return methods


def run_experiment(
    bundle_dir, out_dir, dataset_dir, folds: list[int], methods: list[Method], pretrain_epochs: int, **overrides
) -> list[dict]:
    """For each fold: pretrain once, fine-tune every method from that checkpoint, evaluate each; one row per
    fold and method with the summary means and the fine-tuning seconds per epoch. Finished stages are skipped."""
    rows = []
    for fold in folds:
        work = Path(out_dir) / f"fold{fold}"
        common = dict(dataset_dir=str(dataset_dir), fold=fold, **overrides)
        pretrain(bundle_dir, work, pretrain_epochs, **common)
        for method in methods:
            if method.loss_name is not None:
                finetune(bundle_dir, work, method, pretrain_epochs, **common)
            summary = evaluate(bundle_dir, work, method, **{k: v for k, v in common.items() if k != "fold"})
            stage = "pretrain" if method.loss_name is None else f"finetune_{method.key}"
            seconds = epoch_seconds(work, stage)  # the epochs the stage really ran (overrides may change them)
            row = {"fold": fold, "method": method.label, "key": method.key, "epochs": len(seconds),
                   "seconds_per_epoch": round(sum(seconds) / len(seconds), 3) if seconds else math.nan}
            row.update({k: v["mean"] for k, v in summary["metrics"].items()})
            rows.append(row)
    return rows


def write_results(rows: list[dict], out_dir, title: str = "") -> tuple[Path, Path]:
    """``results.csv`` (one row per fold and method) and ``results.md`` (Table 1 layout, mean ± std over
    folds, plus the seconds per epoch of each loss — the paper's Table 7), both generated from the rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    csv_path = out_dir / "results.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    runtime = ["| loss | epochs | seconds per epoch |", "|---|---|---|"]
    seen = {}
    for row in rows:
        seen.setdefault(row["method"], []).append(row)
    for method, group in seen.items():
        name = "Dice & CE (pretraining)" if group[0]["key"] == "pretrained" else method
        runtime.append(f"| {name} | {group[0]['epochs']} | {_mean_std([float(r['seconds_per_epoch']) for r in group])} |")
    md_path = out_dir / "results.md"
    md_path.write_text(
        (f"# {title}\n\n" if title else "") + results_table(rows)
        + "\nDice and clDice in %; e, e1, e0, e0-Gt lower is better; AGS (%) higher is better. Mean ± std over folds;"
        " fine-tuned methods with the topological post-processing.\n\n" + "\n".join(runtime) + "\n"
    )
    return csv_path, md_path
