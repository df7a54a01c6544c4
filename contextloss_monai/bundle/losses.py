"""The loss of a training stage, chosen by name (:data:`contextloss_monai.method.LOSS_NAMES`), as the paper's tables name the methods."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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

__all__ = ["DEEP_SUPERVISION_RESOLUTIONS", "build_loss", "head_strides", "StackedDeepSupervisionLoss", "target_transforms"]

#: where each deep-supervision head's loss is computed: at the input size (``full``, the heads as MONAI's DynUNet
#: upsamples them) or at the head's own resolution against the label downsampled as nnU-Net does (``own``)
DEEP_SUPERVISION_RESOLUTIONS = ("full", "own")


def head_strides(strides: Sequence, spatial_dims: int) -> list[tuple[int, ...]]:
    """The downsampling factor per axis of each deep-supervision head of a ``DynUNet`` with ``strides``: head ``k``
    (``k = 1, 2, ...``; head 0 is the output) sits at the resolution of decoder level ``k``, the input size divided by
    the product of ``strides[1..k]``.

    Args:
        strides: ``DynUNet``'s ``strides``, one entry per level, each an int or one int per axis.
        spatial_dims: the number of spatial axes.

    Raises:
        ValueError: naming ``strides`` when an entry is not a positive int or has the wrong length.
    """
    per_axis = []
    for entry in strides:
        entry = [entry] * spatial_dims if isinstance(entry, (int, np.integer)) else list(entry)
        if len(entry) != spatial_dims or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in entry):
            raise ValueError(f"strides must hold positive ints or {spatial_dims} positive ints per level, got {list(strides)}.")
        per_axis.append(entry)
    factors = np.cumprod(np.asarray(per_axis[1:], dtype=int).reshape(-1, spatial_dims), axis=0)
    return [tuple(int(f) for f in row) for row in factors]


class StackedDeepSupervisionLoss(_Loss):
    """MONAI's :class:`~monai.losses.DeepSupervisionLoss` for networks that stack their deep
    supervision heads on dim 1 (``DynUNet`` in training mode: ``(B, heads, C, *spatial)``), weights ``1, 1/2, 1/4...``.

    With ``strides`` (:func:`head_strides`), each head's loss is computed at the head's own resolution, as nnU-Net
    does: DynUNet upsamples a head to the input size by nearest-neighbour interpolation with an integer factor, so
    taking every ``s``-th pixel recovers the head exactly (a view, and the same gradient as the head itself), and
    the target is downsampled to it by MONAI's ``DeepSupervisionLoss`` (``nearest-exact``, what nnU-Net's
    ``DownsampleSegForDSTransform`` uses). Without ``strides`` every head's loss is computed at the input size.
    A plain ``(B, C, *spatial)`` prediction (evaluation mode) goes straight to the wrapped loss.

    Args:
        loss: the loss of one head.
        weight_mode: MONAI's ``DeepSupervisionLoss`` weighting.
        strides: per head after the first, the downsampling factor per spatial axis; ``None``: full resolution.
    """

    def __init__(self, loss: _Loss, weight_mode: str = "exp", strides: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        self.deep_supervision = DeepSupervisionLoss(loss, weight_mode=weight_mode)
        self.strides = None if strides is None else [tuple(int(s) for s in factors) for factors in strides]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.dim() != target.dim() + 1:
            return self.deep_supervision(input, target)
        heads = list(torch.unbind(input, dim=1))
        if self.strides is not None:
            if len(heads) - 1 > len(self.strides):
                raise ValueError(f"{len(heads) - 1} deep-supervision heads but strides for {len(self.strides)}: "
                                 "give the network's strides (head_strides).")
            heads[1:] = [head[(..., *(slice(None, None, s) for s in factors))] for head, factors in zip(heads[1:], self.strides)]
        return self.deep_supervision(heads, target)


def build_loss(
    name: str = "dice_ce",
    gamma: float = 0.2,
    alpha: float = 0.5,
    iters: int | None = None,
    skeleton: str = "soft",
    deep_supervision: bool = True,
    restricted: str = DEFAULT_RESTRICTED,
    tube_on_the_fly: bool = False,
    deep_supervision_resolution: str = "full",
    strides: Sequence | None = None,
    spatial_dims: int = 2,
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
        deep_supervision_resolution: ``"full"`` (each head's loss at the input size) or ``"own"`` (at the head's own
            resolution, as nnU-Net: :class:`StackedDeepSupervisionLoss`); needs ``strides`` for ``"own"``.
        strides: the ``DynUNet``'s strides (the bundles: ``@network_def#strides``).
        spatial_dims: the network's spatial dimensions (the bundles: ``@network_def#spatial_dims``).

    Raises:
        ValueError: for an unknown ``name`` (naming the setting ``loss_name``) or a ``gamma`` outside ``[0, 1]``.
    """
    check_option(name, LOSS_NAMES, "loss_name")
    check_option(deep_supervision_resolution, DEEP_SUPERVISION_RESOLUTIONS, "deep_supervision_resolution")
    if deep_supervision_resolution == "own" and strides is None:
        raise ValueError("deep_supervision_resolution 'own' needs the network's strides (strides=...).")
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
    if not deep_supervision:
        return loss
    if deep_supervision_resolution == "own":
        return StackedDeepSupervisionLoss(loss, strides=head_strides(strides, spatial_dims))
    return StackedDeepSupervisionLoss(loss)


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
