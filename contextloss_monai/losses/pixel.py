"""What every loss of the paper's tables shares: the pixel loss ``L_pixel`` of Eq. 1 (MONAI's ``DiceCELoss``),
its per-pixel cross-entropy, and the checks of a target against the network output."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.networks import one_hot

from contextloss_monai.checks import check_binary

__all__ = ["ForegroundDiceCELoss", "activate", "first_foreground_channel", "pixel_loss", "pixelwise_cross_entropy", "prepare_target", "reduce_loss"]


class ForegroundDiceCELoss(DiceCELoss):
    """MONAI's :class:`~monai.losses.DiceCELoss` that reads a one-channel input as the foreground without a word.

    With ``include_background=False`` (this package's default) MONAI already keeps a one-channel input's only
    channel — there is no background channel to leave out — but warns at every call; a binary sigmoid model
    would print that warning at every step. Here a one-channel input goes to the same loss built with
    ``include_background=True``: the same value, no warning. With two or more channels it is ``DiceCELoss``.

    Args:
        include_background: as in ``DiceCELoss``; ``False`` leaves channel 0 out of the Dice when there are two
            or more channels.
        kwargs: ``DiceCELoss``'s other arguments.
    """

    def __init__(self, include_background: bool = False, **kwargs) -> None:
        super().__init__(include_background=include_background, **kwargs)
        self.one_channel = None if include_background else DiceCELoss(include_background=True, **kwargs)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` ``(B, N, *spatial)`` against ``target`` (as ``DiceCELoss``)."""
        if self.one_channel is not None and input.shape[1] == 1:
            return self.one_channel(input, target)
        return super().forward(input, target)


def first_foreground_channel(input: torch.Tensor, softmax: bool) -> int:
    """The first foreground channel of ``input`` ``(B, N, *spatial)``: 1 (channel 0 is the background), or 0 for a
    one-channel input, the foreground of a binary model.

    Raises:
        ValueError: a one-channel input with ``softmax`` (a softmax of one channel is 1 everywhere).
    """
    if input.shape[1] > 1:
        return 1
    if softmax:
        raise ValueError(f"input has one channel, got shape {tuple(input.shape)}: a binary model needs sigmoid=True (softmax "
                         "of one channel is 1 everywhere), or two channels, background first.")
    return 0


def pixel_loss(
    alpha: float,
    include_background: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: Callable | None = None,
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
) -> ForegroundDiceCELoss:
    """``L_pixel = (1 − α)·L_Dice + α·L_CE`` (paper Eq. 1) as MONAI's :class:`~monai.losses.DiceCELoss`
    (``lambda_dice = 1 − α``, ``lambda_ce = α``; :class:`ForegroundDiceCELoss`: a one-channel input is the
    foreground) for one-hot targets; ``alpha`` is checked by the caller."""
    return ForegroundDiceCELoss(
        include_background=include_background,
        sigmoid=sigmoid,
        softmax=softmax,
        other_act=other_act,
        reduction=reduction,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        lambda_dice=1.0 - alpha,
        lambda_ce=alpha,
    )


def activate(input: torch.Tensor, sigmoid: bool = False, softmax: bool = False, other_act: Callable | None = None) -> torch.Tensor:
    """The probabilities of logits ``(B, N, *spatial)`` as MONAI's losses compute them: ``sigmoid``, ``softmax``
    over the channels (not for a single channel) or ``other_act``; the input itself when none is set."""
    if sigmoid:
        return torch.sigmoid(input)
    if softmax and input.shape[1] > 1:
        return torch.softmax(input, dim=1)
    if other_act is not None:
        return other_act(input)
    return input


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """A per-sample-and-class loss reduced as MONAI's losses do: ``"mean"``, ``"sum"``, or ``"none"`` (as it is)."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def pixelwise_cross_entropy(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """
    The per-pixel cross-entropy that MONAI's ``DiceCELoss`` averages, before its reduction.

    As in ``DiceCELoss``, ``input`` is read as logits: softmax cross-entropy over the channels when
    there are several (``-Σ_c y_c log softmax(x)_c``), binary cross-entropy with logits for one channel.

    Args:
        input: logits ``(B, N, *spatial)``.
        target: one-hot (or binary, for ``N = 1``) target of the same shape.

    Returns:
        the loss per pixel, shape ``(B, 1, *spatial)``.
    """
    target = target.to(input.dtype)
    if input.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(input, target, reduction="none")
    return -(target * F.log_softmax(input, dim=1)).sum(dim=1, keepdim=True)


def prepare_target(input: torch.Tensor, target: torch.Tensor, to_onehot_y: bool) -> torch.Tensor:
    """
    Check ``target`` against the network output ``input`` and return it one-hot: the entry check of every
    loss here, run once per call.

    Args:
        input: logits ``(B, N, H, W)`` or ``(B, N, H, W, D)``.
        target: binary one-hot target of the same shape, or class indices ``(B, 1, ...)`` with ``to_onehot_y``
            (ignored, with a warning, for a single-channel ``input``, as MONAI's losses do).
        to_onehot_y: convert class indices to one-hot.

    Returns:
        the one-hot target ``(B, N, *spatial)``.

    Raises:
        ValueError: mismatched dimensions or sizes, input not 4D/5D, class indices out of range, non-binary target.
    """
    if input.dim() != target.dim():
        raise ValueError(
            f"input and target must have the same number of dimensions (B, N, *spatial), "
            f"got shapes {tuple(input.shape)} and {tuple(target.shape)}."
        )
    if input.dim() not in (4, 5):
        raise ValueError(f"input must be 4D (B, N, H, W) or 5D (B, N, H, W, D), got shape {tuple(input.shape)}.")
    if input.shape[0] != target.shape[0] or input.shape[2:] != target.shape[2:]:
        raise ValueError(
            f"target must match input in batch and spatial size, got {tuple(target.shape)} for input {tuple(input.shape)}."
        )
    n_classes = input.shape[1]
    if to_onehot_y and n_classes == 1:
        warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=3)
    elif to_onehot_y:
        if target.shape[1] != 1:
            raise ValueError(f"target must have 1 channel with to_onehot_y=True, got {tuple(target.shape)}.")
        invalid = (target < 0) | (target >= n_classes) | (target != target.round())
        message = f"target must hold class indices in [0, {n_classes - 1}] with to_onehot_y=True."
        if target.is_cuda:  # a device-side assertion, no host synchronisation in the loss
            torch._assert_async(~invalid.any(), message)
        elif invalid.any():
            raise ValueError(message)
        return one_hot(target, num_classes=n_classes)  # binary by construction
    if target.shape[1] != n_classes:
        raise ValueError(
            f"target must have {n_classes} channels (one-hot) like input, or 1 channel with "
            f"to_onehot_y=True, got shape {tuple(target.shape)}."
        )
    check_binary(target, "target")
    return target
