"""Ignite handlers: the topology metrics (like ``monai.handlers.MeanDice``), the training stage's log,
checkpoints and resuming, and the evaluation report."""

from contextloss_monai.handlers.metrics import AGS, BettiError, ClDice, E0Gt, TopologyMetricHandler
from contextloss_monai.handlers.report import MetricsReport
from contextloss_monai.handlers.training import EpochLogger, ResumeFromLastCheckpoint, TrainingStateSaver

__all__ = ["AGS", "BettiError", "ClDice", "E0Gt", "EpochLogger", "MetricsReport", "ResumeFromLastCheckpoint", "TopologyMetricHandler",
           "TrainingStateSaver"]
