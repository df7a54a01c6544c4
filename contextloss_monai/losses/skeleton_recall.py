"""Skeleton Recall (Kirchhoff et al., ECCV 2024): the soft recall of the label's tubed skeleton, added to Dice & CE.

The skeleton is not differentiated: the label's centre line, dilated into a thin tube, is computed on the CPU in
the data pipeline (:class:`~contextloss_monai.transforms.SkeletonTubed`), and the loss asks how much of that tube
the predicted probabilities cover. A gap in a thin structure leaves a piece of the tube uncovered, whatever the
structure's width, so the recall pushes exactly there, at the cost of a few sums per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.networks import one_hot
from torch.nn.modules.loss import _Loss

from contextloss_monai.checks import check_activation, check_non_negative, check_option
from contextloss_monai.losses.pixel import ForegroundDiceCELoss, activate, first_foreground_channel, prepare_target, reduce_loss

__all__ = ["SkeletonRecallLoss", "DiceCESkeletonRecallLoss"]

_MISSING_TUBE = (
    "SkeletonRecallLoss needs the label's tubed skeleton: compute it in the training transforms "
    "(contextloss_monai.transforms.SkeletonTubed, after the crop) and pass it as tube=, or build the loss with "
    "on_the_fly=True (the tube computed from the target on the CPU at every step: slower, and a host copy)."
)


def _tube_on_the_fly(onehot: torch.Tensor) -> torch.Tensor:
    """The one-hot tubed skeleton of one-hot targets ``(B, N, *spatial)``: the pipeline's transform per sample
    (``N = 1``: the binary foreground itself, and its binary tube)."""
    from contextloss_monai.transforms.skeleton_tube import SkeletonTube

    tube = SkeletonTube()
    if onehot.shape[1] == 1:
        return torch.stack([tube(label) for label in onehot])
    return one_hot(torch.stack([tube(label) for label in onehot.argmax(dim=1, keepdim=True)]), num_classes=onehot.shape[1])


class SkeletonRecallLoss(_Loss):
    """
    ``1 − (Σ ŷ·T + s) / (Σ T + s)`` per sample and foreground class: how much of the label's tubed skeleton ``T``
    the predicted probabilities ``ŷ`` leave uncovered (Kirchhoff et al., ECCV 2024). 0 for a prediction that
    covers the tube, and for an empty tube (an empty patch adds nothing).

    Args:
        include_background: must be ``False``: the recall is of the foreground classes' skeletons (the authors
            refuse the background too). A one-channel input (a binary ``sigmoid`` model) is the foreground.
        to_onehot_y: the tube (and the target) are class indices ``(B, 1, *spatial)``, one-hot encoded here.
        sigmoid, softmax, other_act: the activation of ``input`` (at most one), as in MONAI's losses.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B, N − 1)``, or ``(N − 1,)`` with ``batch``; ``N − 1`` read as 1 for one channel).
        smooth: added to the sums (the authors: 1e-5).
        batch: sum over the batch before dividing, one recall per class (nnU-Net's ``batch_dice``).
        on_the_fly: without a ``tube``, compute it from the target on the CPU at each call (a quick start;
            slower, and a copy to the host); otherwise a missing tube is an error.

    Example:
        >>> loss = SkeletonRecallLoss(to_onehot_y=True, softmax=True)
        >>> loss(logits, label, tube=batch["tube"])        # tube from SkeletonTubed in the data pipeline
    """

    def __init__(
        self,
        include_background: bool = False,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        reduction: str = "mean",
        smooth: float = 1e-5,
        batch: bool = False,
        on_the_fly: bool = False,
    ) -> None:
        super().__init__(reduction=reduction)
        if include_background:
            raise ValueError("include_background=True: Skeleton Recall measures the foreground classes' skeletons only.")
        check_activation(sigmoid, softmax, other_act)
        check_option(reduction, ("mean", "sum", "none"), "reduction")
        if smooth <= 0:
            raise ValueError(f"smooth must be > 0 (an empty tube then gives a recall of 1), got {smooth}.")
        self.to_onehot_y, self.sigmoid, self.softmax, self.other_act = to_onehot_y, sigmoid, softmax, other_act
        self.smooth, self.batch, self.on_the_fly = float(smooth), batch, on_the_fly

    def forward(self, input: torch.Tensor, target: torch.Tensor, tube: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, N, H, W)`` or ``(B, N, H, W, D)``: background first and ``N − 1`` foreground
                classes, or ``N = 1``, the foreground of a binary model (with ``sigmoid`` or ``other_act``).
            target: the label, class indices ``(B, 1, ...)`` with ``to_onehot_y`` or one-hot; read only to
                compute the tube with ``on_the_fly``.
            tube: the tubed skeleton in the target's format (:class:`~contextloss_monai.transforms.SkeletonTubed`).

        Raises:
            ValueError: a missing tube without ``on_the_fly``, a one-channel input with ``softmax`` (a softmax of
                one channel is 1 everywhere), mismatched shapes, class indices out of range.
        """
        first = first_foreground_channel(input, self.softmax)
        input = input.float()
        if tube is not None:
            tube = prepare_target(input, tube, self.to_onehot_y)
        elif self.on_the_fly:
            tube = _tube_on_the_fly(prepare_target(input, target, self.to_onehot_y))
        else:
            raise ValueError(_MISSING_TUBE)
        tube = tube[:, first:].to(input.dtype)
        probs = activate(input, self.sigmoid, self.softmax, self.other_act)[:, first:]
        axes = [0, *range(2, input.dim())] if self.batch else list(range(2, input.dim()))
        recall = ((probs * tube).sum(axes) + self.smooth) / (tube.sum(axes) + self.smooth)
        return reduce_loss(1.0 - recall, self.reduction)


class DiceCESkeletonRecallLoss(_Loss):
    """
    The authors' training loss: MONAI's ``DiceCELoss`` (foreground Dice + cross-entropy) plus ``weight`` times
    :class:`SkeletonRecallLoss` (their default weight: 1).

    Args:
        weight: the weight of the Skeleton Recall term.
        on_the_fly: see :class:`SkeletonRecallLoss`.
        smooth: Skeleton Recall's smoothing.
        kwargs: MONAI's loss arguments shared by both terms (``to_onehot_y``, ``softmax``, ``sigmoid``, ``batch``...;
            ``include_background`` applies to the Dice only).
    """

    def __init__(self, weight: float = 1.0, on_the_fly: bool = False, smooth: float = 1e-5, include_background: bool = False, **kwargs) -> None:
        super().__init__()
        self.weight = check_non_negative(weight, "weight")
        self.dice_ce = ForegroundDiceCELoss(include_background=include_background, **kwargs)
        self.skeleton_recall = SkeletonRecallLoss(smooth=smooth, on_the_fly=on_the_fly, **kwargs)

    def forward(self, input: torch.Tensor, target: torch.Tensor, tube: torch.Tensor | None = None) -> torch.Tensor:
        """``DiceCE(input, target) + weight · SkeletonRecall(input, target, tube)``.

        With ``to_onehot_y`` and no ``tube``, a two-channel ``target`` ``(B, 2, *spatial)`` is read as the class
        indices and the tube stacked on the channel axis: how the bundles carry the tube through MONAI's trainer,
        which hands a loss only the prediction and the label (:func:`contextloss_monai.bundle.target_transforms`).
        """
        if tube is None and self.skeleton_recall.to_onehot_y and target.shape[1] == 2:
            target, tube = target[:, :1], target[:, 1:]
        return self.dice_ce(input, target) + self.weight * self.skeleton_recall(input, target, tube)
