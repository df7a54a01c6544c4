"""What the bundles call from their configs: data folders, stage losses and methods, weights, the run layout, the
paired network of Algorithm 2 and DDP helpers. Configs stay declarative; the logic is here. The bundles
themselves are rendered from the template in this subpackage (:mod:`contextloss_monai.bundle.render`) and
zipped or downloaded by :mod:`contextloss_monai.bundle.packaging`. Handlers and transforms the configs use live
in ``contextloss_monai.handlers`` and ``contextloss_monai.transforms``; experiments over many stages (demo,
benchmark, figures) in ``contextloss_monai.experiment``."""

from contextloss_monai.bundle.data import dataset_items, ensure_dataset
from contextloss_monai.bundle.distributed import (
    destroy_distributed,
    distributed_device,
    init_distributed,
    is_main_process,
    wrap_distributed,
)
from contextloss_monai.bundle.losses import StackedDeepSupervisionLoss, build_loss, target_transforms
from contextloss_monai.bundle.networks import PairedNetwork
from contextloss_monai.bundle.weights import finetune_epochs, load_weights
from contextloss_monai.layout import RunLayout
from contextloss_monai.method import LOSS_NAMES, Method

__all__ = [
    "LOSS_NAMES",
    "Method",
    "PairedNetwork",
    "RunLayout",
    "StackedDeepSupervisionLoss",
    "build_loss",
    "dataset_items",
    "destroy_distributed",
    "distributed_device",
    "ensure_dataset",
    "finetune_epochs",
    "init_distributed",
    "is_main_process",
    "load_weights",
    "target_transforms",
    "wrap_distributed",
]
