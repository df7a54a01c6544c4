"""cbDice (Shi et al., MICCAI 2024): clDice's centreline agreement weighted by each structure's local radius.

clDice counts a predicted centreline pixel as correct as soon as it lies anywhere inside the label, and weighs a
thin vessel's centreline like a thick one's. cbDice reads two distance transforms instead of the masks: a
centreline point counts by how deep it lies inside the other mask relative to the radius there (a centreline
drifting towards a boundary counts less — the "boundary" of centreline-boundary Dice), and centreline points
carry a weight that grows as the normalised radius falls (``1/R̂`` in 2D, ``1/R̂²`` in 3D), so that thin
structures are not outweighed by thick ones. The distance transforms and the binarised masks they are read from
carry no gradient; the soft skeleton of the prediction and the probabilities do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.modules.loss import _Loss

from contextloss_monai.checks import check_activation, check_non_negative, check_option, check_positive_int
from contextloss_monai.losses.pixel import ForegroundDiceCELoss, activate, first_foreground_channel, prepare_target, reduce_loss
from contextloss_monai.topology.distance import distance_to_background
from contextloss_monai.topology.skeleton import binary_soft_skeleton_kernel, soft_skeleton

__all__ = ["CBDiceLoss", "DiceCECBDiceLoss", "radius_weights"]

#: keeps the centreline weight ``1/R̂`` finite (the authors' 1e-7)
_EPS = 1e-7


def radius_weights(
    mask: torch.Tensor, skeleton: torch.Tensor, mask_values: torch.Tensor, skeleton_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    The three radius-weighted maps of one side (label or prediction) of cbDice, per sample and class.

    With ``D`` the distance of each mask pixel to the background (:func:`~contextloss_monai.topology.distance.distance_to_background`),
    ``R = D`` on the skeleton (its local radius) and ``m = max(1, max R)`` per sample and class:

    - ``volume = min(D, m) / m · mask_values``: how deep each pixel lies inside the structure, normalised;
    - ``radius = R / m · mask_values``: the normalised radius, on the skeleton only;
    - ``centreline = (1 + ε) / (R̂^(n − 1) + ε) · skeleton_values`` on the skeleton (``n`` spatial dimensions:
      ``1/R̂`` in 2D, ``1/R̂²`` in 3D), 0 elsewhere: the centreline weight, larger for thin structures.

    Args:
        mask: the binary mask the distances are measured in, bool ``(B, C, *spatial)``.
        skeleton: its binary skeleton, bool, same shape.
        mask_values: the values the volume and radius maps scale (the mask itself, or the probabilities).
        skeleton_values: the values the centreline map scales (the skeleton itself, or the soft skeleton).

    Returns:
        ``(volume, radius, centreline)``, each of the input's shape.
    """
    n_spatial = mask.dim() - 2
    distance = distance_to_background(mask.flatten(0, 1)).view(mask.shape)
    radius = distance * skeleton
    largest = radius.flatten(2).amax(dim=2).clamp(min=1.0).view(*mask.shape[:2], *([1] * n_spatial))
    radius = radius / largest
    volume = torch.minimum(distance, largest) / largest
    centreline = torch.where(skeleton, (1.0 + _EPS) / (radius ** (n_spatial - 1) + _EPS), torch.zeros_like(radius))
    return volume * mask_values, radius * mask_values, centreline * skeleton_values


class CBDiceLoss(_Loss):
    """
    ``1 − cbDice`` per sample and foreground class (Shi et al., MICCAI 2024), from the predicted probabilities
    ``P`` and the label ``L``:

    .. math::

        T_{prec} = \\frac{\\sum q^S_P\\, q^V_L + s}{\\sum q^S_P\\, \\tilde R_L + s}, \\quad
        T_{sens} = \\frac{\\sum q^S_L\\, q^V_P + s}{\\sum q^S_L\\, \\tilde R_P + s}, \\quad
        cbDice = \\frac{2\\, T_{prec} T_{sens}}{T_{prec} + T_{sens}}

    with the maps of :func:`radius_weights` (``q^V`` volume, ``q^R`` radius, ``q^S`` centreline) of the label
    (its mask and the soft skeleton of the binary label, which is binary) and of the prediction (distances in
    ``P > 0.5``, skeleton radii where its soft skeleton ``> 0.5``, scaled by ``P`` and the soft skeleton).
    ``R̃_L`` is the label's radius map where it is non-zero and the prediction's elsewhere (and ``R̃_P`` the
    reverse): a centreline point is compared with the radius at that point. A prediction whose centreline
    coincides with the label's gives 1, one that drifts off it or misses pieces of it less; an empty label and
    an empty prediction give 1 (the loss 0), so an empty patch adds nothing.

    The authors' loss is ``−cbDice`` (the same gradient); this is ``1 − cbDice``, which is 0 at best like MONAI's
    losses. Their code merges the foreground channels into one; here each foreground class has its own
    (identical for one foreground class).

    Args:
        include_background: must be ``False`` (the authors' centrelines are of the foreground).
        to_onehot_y: the target holds class indices ``(B, 1, *spatial)``, one-hot encoded here.
        sigmoid, softmax, other_act: the activation of ``input`` (at most one), as in MONAI's losses.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B, C − 1)``, or ``(C − 1,)`` with ``batch``).
        iters: soft-skeleton iterations (the authors: 10).
        smooth: added to every sum (the authors' trainers: 1e-3).
        batch: sum over the batch before dividing (the authors' code); radii are still normalised per sample.

    Example:
        >>> loss = CBDiceLoss(to_onehot_y=True, softmax=True)
        >>> loss(torch.randn(2, 2, 64, 64), (torch.rand(2, 1, 64, 64) > 0.9).float())
    """

    def __init__(
        self,
        include_background: bool = False,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        reduction: str = "mean",
        iters: int = 10,
        smooth: float = 1e-3,
        batch: bool = False,
    ) -> None:
        super().__init__(reduction=reduction)
        if include_background:
            raise ValueError("include_background=True: cbDice compares the foreground classes' centrelines only.")
        check_activation(sigmoid, softmax, other_act)
        check_option(reduction, ("mean", "sum", "none"), "reduction")
        if smooth <= 0:
            raise ValueError(f"smooth must be > 0 (an empty label and prediction then give cbDice 1), got {smooth}.")
        self.to_onehot_y, self.sigmoid, self.softmax, self.other_act = to_onehot_y, sigmoid, softmax, other_act
        self.iters, self.smooth, self.batch = check_positive_int(iters, "iters"), float(smooth), batch

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, N, H, W)`` or ``(B, N, H, W, D)``: background first and ``N − 1`` foreground
                classes, or ``N = 1``, the foreground of a binary model (with ``sigmoid`` or ``other_act``).
            target: class indices ``(B, 1, ...)`` with ``to_onehot_y``, else a binary one-hot target like ``input``.

        Raises:
            ValueError: a one-channel input with ``softmax`` (1 everywhere), mismatched shapes, class indices out of
                range, a non-binary target.
        """
        first = first_foreground_channel(input, self.softmax)
        input = input.float()  # mixed precision: computed in float32
        label = prepare_target(input, target, self.to_onehot_y)[:, first:] > 0.5
        probs = activate(input, self.sigmoid, self.softmax, self.other_act)[:, first:]
        label_skeleton = binary_soft_skeleton_kernel(label, self.iters)
        soft_skel = soft_skeleton(probs, self.iters)
        label_volume, label_radius, label_centreline = radius_weights(label, label_skeleton, label.float(), label_skeleton.float())
        pred_volume, pred_radius, pred_centreline = radius_weights(probs.detach() > 0.5, soft_skel.detach() > 0.5, probs, soft_skel)
        axes = [0, *range(2, input.dim())] if self.batch else list(range(2, input.dim()))
        s = self.smooth
        precision = ((pred_centreline * label_volume).sum(axes) + s) / (
            (pred_centreline * torch.where(label_radius != 0, label_radius, pred_radius)).sum(axes) + s)
        sensitivity = ((label_centreline * pred_volume).sum(axes) + s) / (
            (label_centreline * torch.where(pred_radius != 0, pred_radius, label_radius)).sum(axes) + s)
        return reduce_loss(1.0 - 2.0 * precision * sensitivity / (precision + sensitivity), self.reduction)


class DiceCECBDiceLoss(_Loss):
    """
    The authors' training loss: ``Dice + (1 + w)·CE + w·(1 − cbDice)`` — MONAI's ``DiceCELoss`` (foreground Dice,
    cross-entropy weighted ``1 + w``) plus ``weight`` times :class:`CBDiceLoss`; their trainers use ``w = 1``
    (Dice 1, CE 2, cbDice 1).

    Args:
        weight: ``w``, the weight of the cbDice term (and the extra weight of cross-entropy).
        iters: cbDice's soft-skeleton iterations.
        smooth: cbDice's smoothing.
        kwargs: MONAI's loss arguments shared by both terms (``to_onehot_y``, ``softmax``, ``sigmoid``, ``batch``...;
            ``include_background`` applies to the Dice only).
    """

    def __init__(self, weight: float = 1.0, iters: int = 10, smooth: float = 1e-3, include_background: bool = False, **kwargs) -> None:
        super().__init__()
        self.weight = check_non_negative(weight, "weight")
        self.dice_ce = ForegroundDiceCELoss(include_background=include_background, lambda_ce=1.0 + self.weight, **kwargs)
        self.cbdice = CBDiceLoss(iters=iters, smooth=smooth, **kwargs)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``Dice(input, target) + (1 + w)·CE(input, target) + w·(1 − cbDice(input, target))``."""
        return self.dice_ce(input, target) + self.weight * self.cbdice(input, target)
