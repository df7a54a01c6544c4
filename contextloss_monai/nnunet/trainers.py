"""nnU-Net v2 trainers that fine-tune a pretrained nnU-Net with the paper's losses.

Each trainer is nnU-Net's own :class:`nnUNetTrainer` (data loading, augmentation, deep supervision, mixed
precision on CUDA, poly learning-rate schedule, validation, checkpoints) with two changes: it trains for 5 %
of the pretraining's epochs (the paper: 1000 epochs of Dice & CE, then 50 of fine-tuning), and — except for
the Dice & CE baseline, which keeps nnU-Net's loss — its loss is this package's loss on every
deep-supervision output that nnU-Net weights (nnU-Net's own weights and downsampled targets, via its
``DeepSupervisionWrapper``). The losses are built by :class:`contextloss_monai.method.Method`, as the MONAI
bundles build theirs: softmax over the logits, one-hot labels, background excluded.

Start from a pretrained checkpoint with nnU-Net's option: ``nnUNetv2_train D 2d 0 -tr nnUNetTrainerCLoss
-pretrained_weights <pretraining>/fold_0/checkpoint_final.pth``. The learning-rate schedule is nnU-Net's
(``initial_lr`` 0.01, poly decay over the fine-tuning epochs): the paper fine-tunes inside nnU-Net and names
no other rate (our reading). Other settings: subclass and change the class attributes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from contextloss_monai.method import DEFAULT_RESTRICTED, Method

__all__ = [
    "TRAINERS",
    "nnUNetTrainerCBDice",
    "nnUNetTrainerClDice",
    "nnUNetTrainerCLoss",
    "nnUNetTrainerCLoss_1epoch",
    "nnUNetTrainerCLossDice",
    "nnUNetTrainerCLossGamma01",
    "nnUNetTrainerCompoundClDice",
    "nnUNetTrainerDiceCEFinetune",
    "nnUNetTrainerSkeletonRecall",
    "nnUNetTrainerThinCLoss",
    "trainer_path",
]

#: fine-tuning length as a fraction of the pretraining's epochs (the paper: 50 of 1000)
FINETUNE_FRACTION = 0.05


def trainer_path() -> Path:
    """The folder to put in nnU-Net's ``nnUNet_extTrainer`` variable so that ``-tr`` finds these trainers."""
    return Path(__file__).resolve().parent / "ext_trainers"


class nnUNetTrainerDiceCEFinetune(nnUNetTrainer):
    """Dice & CE fine-tuning, the paper's baseline: nnU-Net's own loss for the fine-tuning length.

    ``FINETUNE_FRACTION`` of ``pretraining_epochs`` (50 epochs), from the same pretrained checkpoint as the
    topology losses; the base of every trainer here."""

    pretraining_epochs: int = 1000

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = max(1, round(FINETUNE_FRACTION * self.pretraining_epochs))


class _TopologyLossTrainer(nnUNetTrainerDiceCEFinetune):
    """Fine-tuning with the loss of :class:`~contextloss_monai.method.Method` ``(loss_name, gamma, restricted)``
    (``alpha``, ``iters``, ``skeleton``: :func:`~contextloss_monai.bundle.build_loss`) on each deep-supervision output."""

    loss_name: str = "context"
    gamma: float = 0.2
    alpha: float = 0.5
    iters: int | None = None  # each loss's default: the paper's 50 (clDice, CLoss), cbDice's authors' 10
    skeleton: str = "soft"
    restricted: str = DEFAULT_RESTRICTED

    def topology_loss(self) -> torch.nn.Module:
        """The loss of one output: logits ``(B, C, *spatial)`` against class indices ``(B, 1, *spatial)``."""
        method = Method(self.loss_name, self.gamma, self.restricted)
        # nnU-Net's data pipeline makes no tube: Skeleton Recall computes it from each output's target (slower)
        return method.build_loss(alpha=self.alpha, iters=self.iters, skeleton=self.skeleton, deep_supervision=False, tube_on_the_fly=True)

    def _build_loss(self) -> torch.nn.Module:
        if self.label_manager.has_regions or self.label_manager.ignore_label is not None:
            raise ValueError(
                f"{type(self).__name__} needs plain integer labels (0 = background, 1..K): region-based training "
                "and ignore labels are not supported by the topology losses."
            )
        nnunet_loss = super()._build_loss()  # nnU-Net's deep-supervision weights, kept as they are
        loss = self.topology_loss()
        if isinstance(nnunet_loss, DeepSupervisionWrapper):
            return DeepSupervisionWrapper(loss, nnunet_loss.weight_factors)
        return loss


class nnUNetTrainerCLoss(_TopologyLossTrainer):
    """CLoss (Eq. 1): ``(1 − γ)·L_pixel + γ·L_pixel ⊙ M``, γ = 0.2, α = 0.5, soft skeleton."""


class nnUNetTrainerCLossGamma01(_TopologyLossTrainer):
    """CLoss with γ = 0.1."""

    gamma = 0.1


class nnUNetTrainerCLossDice(_TopologyLossTrainer):
    """CLoss (Dice): ``α = 0``, the pixel loss and its restricted term are Dice only."""

    loss_name = "context_dice"


class nnUNetTrainerThinCLoss(_TopologyLossTrainer):
    """Thin CLoss: the mask is the error skeleton only, without its context."""

    loss_name = "thin_context"


class nnUNetTrainerClDice(_TopologyLossTrainer):
    """clDice baseline: ``(1 − γ)·Dice + γ·clDice`` (MONAI's soft clDice, 50 iterations)."""

    loss_name = "cldice"


class nnUNetTrainerCompoundClDice(_TopologyLossTrainer):
    """Compound clDice: ``(1 − γ)·L_pixel + γ·clDice``."""

    loss_name = "compound_cldice"


class nnUNetTrainerSkeletonRecall(_TopologyLossTrainer):
    """Skeleton Recall: Dice & CE + γ·(1 − soft recall of the label's tubed skeleton), its authors' weight γ = 1; the
    tube is computed from each deep-supervision output's target on the CPU (the authors compute it in their data
    loader: the same tube, more time per step)."""

    loss_name = "skeleton_recall"
    gamma = 1.0


class nnUNetTrainerCBDice(_TopologyLossTrainer):
    """cbDice: Dice + (1 + γ)·CE + γ·(1 − cbDice), its authors' weights (γ = 1: Dice 1, CE 2, cbDice 1) and soft-skeleton
    iterations (10); distance transforms on the GPU with cuCIM, else on the host."""

    loss_name = "cbdice"
    gamma = 1.0


class nnUNetTrainerCLoss_1epoch(nnUNetTrainerCLoss):
    """CLoss fine-tuning for one epoch: the quick CPU pass of the README (after nnU-Net's ``nnUNetTrainer_5epochs``)."""

    pretraining_epochs = 20


#: ``-tr`` name -> trainer class
TRAINERS: dict[str, type[nnUNetTrainer]] = {
    cls.__name__: cls
    for cls in (nnUNetTrainerDiceCEFinetune, nnUNetTrainerCLoss, nnUNetTrainerCLossGamma01, nnUNetTrainerCLossDice,
                nnUNetTrainerThinCLoss, nnUNetTrainerClDice, nnUNetTrainerCompoundClDice, nnUNetTrainerSkeletonRecall,
                nnUNetTrainerCBDice, nnUNetTrainerCLoss_1epoch)
}
