"""The loss of a training stage, chosen by name (:data:`contextloss_monai.method.LOSS_NAMES`), as the paper's tables name the methods."""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from torch.nn.modules.loss import _Loss

from contextloss_monai.checks import check_option
from contextloss_monai.losses import (
    DEFAULT_RESTRICTED,
    OUTSIDE_LABEL,
    ClDiceLoss,
    CompoundClDiceLoss,
    DiceCECBDiceLoss,
    ContextLoss,
    DiceCESkeletonRecallLoss,
    FieldOfViewLoss,
)
from contextloss_monai.method import LOSS_NAMES

__all__ = ["build_loss", "StackedDeepSupervisionLoss", "target_transforms"]

class StackedDeepSupervisionLoss(_Loss):
    """MONAI's :class:`~monai.losses.DeepSupervisionLoss` for networks that stack their deep
    supervision heads on dim 1 (``DynUNet`` in training mode: ``(B, heads, C, *spatial)``).

    A plain ``(B, C, *spatial)`` prediction (evaluation mode) goes straight to the wrapped loss.
    """

    def __init__(self, loss: _Loss, weight_mode: str = "exp") -> None:
        super().__init__()
        self.deep_supervision = DeepSupervisionLoss(loss, weight_mode=weight_mode)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.dim() == target.dim() + 1:
            return self.deep_supervision(list(torch.unbind(input, dim=1)), target)
        return self.deep_supervision(input, target)


def build_loss(
    name: str = "dice_ce",
    gamma: float = 0.2,
    alpha: float = 0.5,
    iters: int | None = None,
    skeleton: str = "soft",
    deep_supervision: bool = True,
    restricted: str = DEFAULT_RESTRICTED,
    tube_on_the_fly: bool = False,
) -> _Loss:
    """The loss of a stage for softmax logits and class-index labels ``(B, 1, *spatial)``; label entries
    :data:`~contextloss_monai.losses.OUTSIDE_LABEL` lie outside the field of view and are left out
    (:class:`~contextloss_monai.losses.FieldOfViewLoss`).

    ============================  =============================================================
    ``name``                      loss
    ============================  =============================================================
    ``dice_ce``                   MONAI ``DiceCELoss`` (the pretraining loss, ``L_pixel``)
    ``cldice``                    ``(1 − γ)·Dice + γ·clDice`` (:class:`ClDiceLoss`)
    ``compound_cldice``           ``(1 − γ)·L_pixel + γ·clDice`` (:class:`CompoundClDiceLoss`)
    ``context``                   CLoss, Eq. 1 (:class:`ContextLoss`, ``alpha``)
    ``context_dice``              CLoss (Dice): ``alpha = 0``
    ``thin_context``              Thin CLoss: ``context=False``
    ``skeleton_recall``           Dice & CE + γ·Skeleton Recall (:class:`DiceCESkeletonRecallLoss`); the
                                  label's tube stacked on the target (:func:`target_transforms`)
    ``cbdice``                    Dice + (1 + γ)·CE + γ·(1 − cbDice) (:class:`DiceCECBDiceLoss`)
    ============================  =============================================================

    Args:
        name: one of :data:`~contextloss_monai.method.LOSS_NAMES`.
        gamma: weight of the topology term (ignored by ``dice_ce``).
        alpha: weight of cross-entropy in ``L_pixel`` for the ContextLoss variants and compound clDice.
        iters: soft-skeleton iterations of the clDice variants, cbDice and ContextLoss with the soft skeleton; ``None``:
            each loss's own default (the paper's 50; cbDice its authors' 10).
        skeleton: ContextLoss's label skeleton, ``"soft"`` or ``"exact"``.
        deep_supervision: wrap in :class:`StackedDeepSupervisionLoss` (DynUNet with deep supervision).
        restricted: ContextLoss's reading of the restricted term, ``"hadamard"`` (default) or ``"mask_mean"``.
        tube_on_the_fly: Skeleton Recall computes the tube from the target at every step (nnU-Net's trainers,
            whose data pipeline does not make it) instead of reading it stacked on the target.

    Raises:
        ValueError: for an unknown ``name`` (naming the setting ``loss_name``) or a ``gamma`` outside ``[0, 1]``.
    """
    check_option(name, LOSS_NAMES, "loss_name")
    common = {"include_background": False, "to_onehot_y": True, "softmax": True}
    skeleton_iters = {} if iters is None else {"iters": iters}
    if name == "dice_ce":
        loss: _Loss = DiceCELoss(**common)
    elif name == "cldice":
        loss = ClDiceLoss(gamma=gamma, **skeleton_iters, **common)
    elif name == "compound_cldice":
        loss = CompoundClDiceLoss(gamma=gamma, alpha=alpha, **skeleton_iters, **common)
    elif name == "skeleton_recall":
        loss = DiceCESkeletonRecallLoss(weight=gamma, on_the_fly=tube_on_the_fly, **common)
    elif name == "cbdice":
        loss = DiceCECBDiceLoss(weight=gamma, **skeleton_iters, **common)
    else:  # the ContextLoss variants
        loss = ContextLoss(
            gamma=gamma,
            alpha=0.0 if name == "context_dice" else alpha,
            context=name != "thin_context",
            skeleton=skeleton,
            **skeleton_iters,
            restricted=restricted,
            **common,
        )
    loss = FieldOfViewLoss(loss)  # label value OUTSIDE_LABEL: outside the field of view, left out
    return StackedDeepSupervisionLoss(loss) if deep_supervision else loss


def target_transforms(loss_name: str) -> list:
    """What a loss needs from the training pipeline beyond the label, as transforms placed after the augmentation
    (train.yaml): for ``skeleton_recall`` the label's tubed skeleton (:class:`~contextloss_monai.transforms.SkeletonTubed`,
    the field-of-view mark left out), stacked on the label as a second channel; for every other loss nothing.

    Raises:
        ValueError: for an unknown ``loss_name``.
    """
    from monai.transforms import ConcatItemsd, DeleteItemsd

    from contextloss_monai.transforms import SkeletonTubed

    check_option(loss_name, LOSS_NAMES, "loss_name")
    if loss_name != "skeleton_recall":
        return []
    return [SkeletonTubed(keys="label", tube_key="tube", ignore_value=OUTSIDE_LABEL),
            ConcatItemsd(keys=["label", "tube"], name="label", dim=0), DeleteItemsd(keys="tube")]
