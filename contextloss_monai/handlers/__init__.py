"""Ignite handlers: the topology metrics (like ``monai.handlers.MeanDice``), the training stage's log,
checkpoints, final model and guards, the stage's progress bar, and the evaluation report."""

from contextloss_monai.handlers.metrics import AGS, BettiError, ClDice, E0Gt, TopologyMetricHandler
from contextloss_monai.handlers.progress import StageProgressBar
from contextloss_monai.handlers.report import MetricsReport, write_metrics_report
from contextloss_monai.handlers.training import (
    EarlyStopOnPlateau,
    EpochLogger,
    FinalModelSaver,
    ResumeFromLastCheckpoint,
    StopOnNonFiniteLoss,
    TrainingStateSaver,
)

__all__ = [
    "AGS",
    "BettiError",
    "ClDice",
    "E0Gt",
    "EarlyStopOnPlateau",
    "EpochLogger",
    "FinalModelSaver",
    "MetricsReport",
    "ResumeFromLastCheckpoint",
    "StageProgressBar",
    "StopOnNonFiniteLoss",
    "TopologyMetricHandler",
    "TrainingStateSaver",
    "write_metrics_report",
]
