"""The clDice baselines of the paper's tables, built on MONAI's soft-clDice (Shit et al., CVPR 2021)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.losses import SoftclDiceLoss, SoftDiceclDiceLoss
from monai.utils import DiceCEReduction, look_up_option
from torch.nn.modules.loss import _Loss

from contextloss_monai.checks import check_positive_int, check_unit_interval
from contextloss_monai.losses.pixel import pixel_loss, prepare_target

__all__ = ["ClDiceLoss", "CompoundClDiceLoss"]


class ClDiceLoss(SoftDiceclDiceLoss):
    """
    The paper's "clDice" baseline: ``(1 − γ)·L_Dice + γ·L_clDice``, soft Dice as the pixel loss.

    This is MONAI's :class:`~monai.losses.SoftDiceclDiceLoss` with ``alpha = gamma`` and ``iter_ = iters``;
    only the argument names follow this package (``gamma``, ``iters``) and are validated.

    Args:
        gamma: weight ``γ ∈ [0, 1]`` of the clDice term.
        iters: soft-skeleton iterations (the paper uses 50).
        kwargs: passed to :class:`~monai.losses.SoftDiceclDiceLoss` (``include_background``,
            ``to_onehot_y``, ``sigmoid``, ``softmax``, ``other_act``, ``smooth_nr``, ``smooth_dr``, ...).

    Raises:
        ValueError: ``gamma`` outside ``[0, 1]`` or non-positive ``iters``.

    Example:
        >>> loss = ClDiceLoss(gamma=0.5, softmax=True, to_onehot_y=True)
        >>> loss(torch.randn(1, 2, 32, 32), (torch.rand(1, 1, 32, 32) > 0.8).float())
    """

    def __init__(self, gamma: float = 0.5, iters: int = 50, **kwargs) -> None:
        super().__init__(
            iter_=check_positive_int(iters, "iters"), alpha=check_unit_interval(gamma, "gamma"), **kwargs
        )
        self.gamma = self.alpha

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, N, H, W[, D])``.
            target: binary one-hot target of the same shape, or class indices ``(B, 1, ...)`` with ``to_onehot_y``.

        Raises:
            ValueError: mismatched shapes, input not 4D/5D, non-binary target (checked as ``ContextLoss`` does).
        """
        input = input.float()  # mixed precision: computed in float32
        target = prepare_target(input, target, self.to_onehot_y)
        return (1.0 - self.alpha) * self.dice(input, target) + self.alpha * self.cldice(input, target)


class CompoundClDiceLoss(_Loss):
    """
    The paper's "compound clDice" baseline: clDice whose pixel loss is ``L_pixel`` of Eq. 1,

    .. math::

        L = (1 - \\gamma)\\,[(1 - \\alpha) L_{Dice} + \\alpha L_{CE}] + \\gamma \\, L_{clDice}

    with MONAI's :class:`~monai.losses.DiceCELoss` (``lambda_dice = 1 − α``, ``lambda_ce = α``) and
    :class:`~monai.losses.SoftclDiceLoss` (``iter_ = iters``).

    Args:
        gamma: weight ``γ ∈ [0, 1]`` of the clDice term.
        alpha: weight ``α ∈ [0, 1]`` of cross-entropy in ``L_pixel``.
        iters: soft-skeleton iterations (the paper uses 50).
        include_background: if False, channel 0 is excluded from the Dice and clDice terms.
        to_onehot_y: convert a class-index target ``(B, 1, *spatial)`` to one-hot.
        sigmoid: sigmoid activation of the logits.
        softmax: softmax activation over the channels.
        other_act: another activation.
        reduction: ``"mean"`` or ``"sum"``.
        smooth_nr: Dice numerator smoothing.
        smooth_dr: Dice denominator smoothing.

    Raises:
        ValueError: ``gamma``/``alpha`` outside ``[0, 1]``, non-positive ``iters``, unsupported ``reduction``.

    Example:
        >>> loss = CompoundClDiceLoss(gamma=0.2, softmax=True, to_onehot_y=True)
        >>> loss(torch.randn(1, 2, 32, 32), (torch.rand(1, 1, 32, 32) > 0.8).float())
    """

    def __init__(
        self,
        gamma: float = 0.5,
        alpha: float = 0.5,
        iters: int = 50,
        include_background: bool = False,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        self.gamma = check_unit_interval(gamma, "gamma")
        self.alpha = check_unit_interval(alpha, "alpha")
        self.reduction = look_up_option(reduction, DiceCEReduction).value
        self.to_onehot_y = to_onehot_y
        self.pixel_loss = pixel_loss(self.alpha, include_background, sigmoid, softmax, other_act, self.reduction, smooth_nr, smooth_dr)
        cldice = dict(iter_=check_positive_int(iters, "iters"), sigmoid=sigmoid, softmax=softmax, other_act=other_act, reduction=self.reduction)
        self.cldice = SoftclDiceLoss(include_background=include_background, **cldice)
        # a one-channel input is the foreground, without MONAI's warning at every call (as ForegroundDiceCELoss)
        self.cldice_one_channel = None if include_background else SoftclDiceLoss(include_background=True, **cldice)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, N, H, W[, D])``.
            target: one-hot target of the same shape, or class indices ``(B, 1, ...)`` with ``to_onehot_y``.

        Raises:
            ValueError: mismatched shapes, input not 4D/5D, non-binary target (checked as ``ContextLoss`` does).
        """
        input = input.float()  # mixed precision: computed in float32
        target = prepare_target(input, target, self.to_onehot_y)
        pixel = self.pixel_loss(input, target)
        if self.gamma == 0.0:
            return pixel
        cldice = self.cldice_one_channel if self.cldice_one_channel is not None and input.shape[1] == 1 else self.cldice
        return (1.0 - self.gamma) * pixel + self.gamma * cldice(input, target)
