"""Experiments over a bundle's stages — what the demo and the benchmark run: pretraining once, every
method fine-tuned from it, evaluation, the paper's tables, figures, and bundle packaging."""

from contextloss_monai.experiment.results import (
    PAIRED_METRICS,
    PAPER_COLUMNS,
    epoch_seconds,
    mean_std,
    paired_comparison,
    results_table,
    stage_steps,
    training_rows,
    write_results,
)
from contextloss_monai.experiment.runner import (
    FINETUNE_STEPS,
    PRETRAIN_MAX_EPOCHS,
    PRETRAIN_PATIENCE,
    Method,
    bundle_setting,
    device_override,
    evaluate,
    finetune,
    methods_for,
    parse_overrides,
    pretrain,
    run_experiment,
    run_stage,
)

__all__ = [
    "FINETUNE_STEPS",
    "PRETRAIN_MAX_EPOCHS",
    "PRETRAIN_PATIENCE",
    "Method",
    "PAIRED_METRICS",
    "PAPER_COLUMNS",
    "bundle_setting",
    "device_override",
    "epoch_seconds",
    "evaluate",
    "finetune",
    "mean_std",
    "methods_for",
    "paired_comparison",
    "parse_overrides",
    "pretrain",
    "results_table",
    "run_experiment",
    "run_stage",
    "stage_steps",
    "training_rows",
    "write_results",
]
