"""Training inside a field of view: the pixels a label marks as outside are left out of any loss.

A dataset with field-of-view masks (fundus photographs: the circular aperture; microscopy: the imaged
region) has no labels outside the mask, so nothing there may be learned. The training transforms mark
those pixels in the label with :data:`OUTSIDE_LABEL` (:class:`~contextloss_monai.transforms.MarkOutsideFieldOfViewd`,
after cropping), the way nnU-Net marks an ignore label (the highest integer label), and :class:`FieldOfViewLoss`
hands the wrapped loss a prediction and a label in which those pixels are certain, correct background.
"""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["OUTSIDE_LABEL", "FieldOfViewLoss"]

#: the label value of a pixel outside the field of view (one above the binary labels, as nnU-Net's ignore label)
OUTSIDE_LABEL = 2

#: the logit margin of the certain background put outside: softmax gives exactly (1, 0) in float32 and float16
_CERTAIN = 1.0e4


class FieldOfViewLoss(_Loss):
    """
    Wrap a loss of softmax logits ``(B, C, *spatial)`` and class-index labels ``(B, 1, *spatial)`` (or the
    stacked deep-supervision heads ``(B, heads, C, *spatial)``) so that the pixels labelled
    ``outside_value`` are left out.

    Outside, the label becomes background (0) and the logits a certain background prediction (a margin of
    1e4 for channel 0, or −1e4 for a single sigmoid channel; a constant without gradient). Such a pixel adds exactly zero to every term of the
    losses here: the foreground Dice sums (``include_background=False``), the cross-entropy, the soft
    skeletons and ContextLoss's critical pixel mask, which is empty where prediction and label agree. Its
    gradient is exactly zero. Our reading for the means: a mean over pixels keeps its denominator (the patch
    size), so a patch half outside the field of view weighs its cross-entropy by half, as MONAI's
    ``MaskedDiceLoss`` does by multiplying with the mask.

    Without ``outside_value`` in the label the wrapped loss sees its input unchanged (``torch.where`` with
    an all-false condition), so a dataset without masks trains exactly as without the wrapper; no value
    is read back to the host.

    Args:
        loss: the loss to wrap (softmax logits, class-index labels).
        outside_value: the label value of the pixels outside the field of view.

    Example:
        >>> loss = FieldOfViewLoss(DiceCELoss(to_onehot_y=True, softmax=True, include_background=False))
        >>> label[..., :4] = OUTSIDE_LABEL      # the first four columns lie outside
        >>> loss(logits, label).backward()      # logits.grad[..., :4] == 0
    """

    def __init__(self, loss: _Loss, outside_value: int = OUTSIDE_LABEL) -> None:
        super().__init__()
        self.loss = loss
        self.outside_value = outside_value

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, C, *spatial)``, or ``(B, heads, C, *spatial)`` for stacked heads.
            target: class indices ``(B, 1, *spatial)``, ``outside_value`` outside the field of view; further
                channels (a tube stacked on the label for Skeleton Recall) are set to 0 outside.
        """
        outside = target[:, :1] == self.outside_value  # channel 0: the class indices (more channels: maps stacked on it)
        target = torch.where(outside, torch.zeros_like(target), target)
        channel_dim = input.dim() - target.dim() + 1  # 1, or 2 for stacked heads
        if input.dim() > target.dim():  # (B, 1, *spatial) -> (B, 1, 1, *spatial) against (B, heads, C, *spatial)
            outside = outside.unsqueeze(1)
        channels = input.shape[channel_dim]
        background = torch.full((channels,), -_CERTAIN, dtype=input.dtype, device=input.device)
        if channels > 1:  # softmax: channel 0 is background; one sigmoid channel: a certain 0
            background[0] = _CERTAIN
        background = background.reshape((-1,) + (1,) * (input.dim() - channel_dim - 1))
        return self.loss(torch.where(outside, background, input), target)
