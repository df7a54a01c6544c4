"""What the bundles in ``bundles/`` call from their configs: data folders, stage losses, weights,
handlers, Algorithm 2 inference parts and DDP helpers. Configs stay declarative; the logic is here."""

from contextloss_monai.bundle.data import dataset_items, ensure_dataset
from contextloss_monai.bundle.distributed import (
    destroy_distributed,
    distributed_device,
    init_distributed,
    is_main_process,
    wrap_distributed,
)
from contextloss_monai.bundle.handlers import EpochLogger, MetricsReport, ResumeFromLastCheckpoint, TrainingStateSaver
from contextloss_monai.bundle.inference import PairedNetwork, SplitPaird
from contextloss_monai.bundle.losses import LOSS_NAMES, StackedDeepSupervisionLoss, build_loss
from contextloss_monai.bundle.weights import finetune_epochs, load_weights

__all__ = [
    "EpochLogger",
    "LOSS_NAMES",
    "MetricsReport",
    "PairedNetwork",
    "ResumeFromLastCheckpoint",
    "SplitPaird",
    "StackedDeepSupervisionLoss",
    "TrainingStateSaver",
    "build_loss",
    "dataset_items",
    "destroy_distributed",
    "distributed_device",
    "ensure_dataset",
    "finetune_epochs",
    "init_distributed",
    "is_main_process",
    "load_weights",
    "wrap_distributed",
]
