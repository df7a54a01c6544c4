"""Experiments over a bundle's stages — what the demo and the benchmark run: pretraining once, every
method fine-tuned from it, evaluation, the paper's tables, figures, and bundle packaging."""

from contextloss_monai.experiment.results import PAPER_COLUMNS, epoch_seconds, mean_std, results_table, write_results
from contextloss_monai.experiment.runner import (
    Method,
    bundle_setting,
    device_override,
    evaluate,
    finetune,
    methods_for,
    pretrain,
    run_experiment,
    run_stage,
)

__all__ = [
    "Method",
    "PAPER_COLUMNS",
    "bundle_setting",
    "device_override",
    "epoch_seconds",
    "evaluate",
    "finetune",
    "mean_std",
    "methods_for",
    "pretrain",
    "results_table",
    "run_experiment",
    "run_stage",
    "write_results",
]
