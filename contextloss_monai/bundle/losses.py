"""The loss of a training stage, chosen by name (:data:`contextloss_monai.method.LOSS_NAMES`), as the paper's tables name the methods."""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from torch.nn.modules.loss import _Loss

from contextloss_monai.checks import check_option
from contextloss_monai.losses import DEFAULT_RESTRICTED, ClDiceLoss, CompoundClDiceLoss, ContextLoss, FieldOfViewLoss
from contextloss_monai.method import LOSS_NAMES

__all__ = ["build_loss", "StackedDeepSupervisionLoss"]

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
    iters: int = 50,
    skeleton: str = "soft",
    deep_supervision: bool = True,
    restricted: str = DEFAULT_RESTRICTED,
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
    ============================  =============================================================

    Args:
        name: one of :data:`~contextloss_monai.method.LOSS_NAMES`.
        gamma: weight of the topology term (ignored by ``dice_ce``).
        alpha: weight of cross-entropy in ``L_pixel`` for the ContextLoss variants and compound clDice.
        iters: soft-skeleton iterations (clDice variants, ContextLoss with the soft skeleton).
        skeleton: ContextLoss's label skeleton, ``"soft"`` or ``"exact"``.
        deep_supervision: wrap in :class:`StackedDeepSupervisionLoss` (DynUNet with deep supervision).
        restricted: ContextLoss's reading of the restricted term, ``"hadamard"`` (default) or ``"mask_mean"``.

    Raises:
        ValueError: for an unknown ``name`` (naming the setting ``loss_name``) or a ``gamma`` outside ``[0, 1]``.
    """
    check_option(name, LOSS_NAMES, "loss_name")
    common = {"include_background": False, "to_onehot_y": True, "softmax": True}
    if name == "dice_ce":
        loss: _Loss = DiceCELoss(**common)
    elif name == "cldice":
        loss = ClDiceLoss(gamma=gamma, iters=iters, **common)
    elif name == "compound_cldice":
        loss = CompoundClDiceLoss(gamma=gamma, alpha=alpha, iters=iters, **common)
    else:  # the ContextLoss variants
        loss = ContextLoss(
            gamma=gamma,
            alpha=0.0 if name == "context_dice" else alpha,
            context=name != "thin_context",
            skeleton=skeleton,
            iters=iters,
            restricted=restricted,
            **common,
        )
    loss = FieldOfViewLoss(loss)  # label value OUTSIDE_LABEL: outside the field of view, left out
    return StackedDeepSupervisionLoss(loss) if deep_supervision else loss
