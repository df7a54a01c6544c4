"""ContextLoss (CLoss), Eq. 1-2 of Schacht et al., "ContextLoss: Context information for
topology-preserving segmentation", ICIP 2025 (arXiv 2506.11134)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.losses import DiceLoss
from monai.networks import one_hot
from monai.utils import DiceCEReduction, look_up_option
from torch.nn.modules.loss import _Loss

from contextloss_monai.checks import check_activation, check_option, check_positive_int, check_spacing, check_unit_interval
from contextloss_monai.losses.pixel import activate, pixel_loss, pixelwise_cross_entropy, prepare_target
from contextloss_monai.topology.critical_mask import critical_mask_kernel
from contextloss_monai.topology.skeleton import SKELETON_METHODS

__all__ = ["ContextLoss", "DEFAULT_RESTRICTED", "RESTRICTED_READINGS", "binarize_prediction"]

#: readings of the restricted term ``L_pixel ⊙ M`` (see :class:`ContextLoss`)
RESTRICTED_READINGS = ("hadamard", "mask_mean")
#: the default reading: the literal Hadamard product. The project's ablation (docs/results.md: roads_2d and
#: vessap_3d, 3 folds each, same pretrained checkpoints) found it closing more gaps than the mean over the mask
#: at a third of the Dice cost (the earlier default is in the CHANGELOG).
DEFAULT_RESTRICTED = "hadamard"


def binarize_prediction(
    input: torch.Tensor, sigmoid: bool = False, softmax: bool = False, other_act: Callable | None = None
) -> torch.Tensor:
    """
    The binarized current prediction ``P`` used for the critical pixel mask (no gradient).

    ``softmax`` (or ``other_act`` with several channels): one-hot of the arg-max; ``sigmoid``: logit > 0;
    ``other_act``: activated value > 0.5; no activation: the input is read as probabilities, > 0.5.

    Args:
        input: network output, shape ``(B, N, *spatial)``.

    Returns:
        a bool tensor of the same shape.
    """
    with torch.no_grad():
        if softmax and input.shape[1] > 1:
            # ``max`` returns the first maximal index like ``argmax``, and is far faster over dim 1 on CPU
            return one_hot(input.max(1, keepdim=True).indices, num_classes=input.shape[1], dtype=torch.bool)
        if sigmoid:
            return input > 0
        if other_act is not None:
            return other_act(input) > 0.5
        return input > 0.5


class ContextLoss(_Loss):
    """
    ContextLoss (CLoss) for topology-preserving segmentation of thin structures, 2D and 3D.

    .. math::

        L_{pixel} = (1 - \\alpha) L_{Dice} + \\alpha L_{CE}, \\qquad
        L_{context} = (1 - \\gamma) L_{pixel}(\\hat y, y) + \\gamma \\, L_{pixel}(\\hat y, y) \\odot M

    ``M`` is the critical pixel mask (:func:`contextloss_monai.topology.critical_pixel_mask`) of the
    binarized current prediction against the target, one mask per class channel, computed under
    ``torch.no_grad`` at every call. ``L_pixel`` is MONAI's :class:`~monai.losses.DiceCELoss` with
    ``lambda_dice = 1 - alpha`` and ``lambda_ce = alpha``.

    The restricted term ``L_pixel ⊙ M`` (the paper's Hadamard product; *our reading*, the paper's
    pseudo-code is not available to us), ``restricted="hadamard"`` (the default) — the product taken literally:

    * cross-entropy part: the per-pixel cross-entropy map of ``DiceCELoss`` times ``M``, averaged like the
      unrestricted term, ``Σ M·ℓ / N`` (``N`` the number of mask entries, i.e. pixels × batch × classes);
    * Dice part: MONAI's soft Dice of ``ŷ·M`` against ``y·M`` per sample and class, averaged over all
      (sample, class) pairs, an empty mask adding 0;
    * an empty mask (a perfect prediction, an empty patch) makes the restricted term exactly 0, never NaN.

    ``restricted="mask_mean"`` is the other reading: the cross-entropy averaged
    over the pixels of ``M``, ``Σ M·ℓ / Σ M`` (summed over the classes' masks of the whole batch), and the
    masked Dice averaged over the (sample, class) pairs whose mask is non-empty. It gives the restricted
    cross-entropy far more weight (the inverse of the mask's share of the image). The project's ablation
    found the Hadamard reading closing more gaps at a smaller Dice cost (see :data:`DEFAULT_RESTRICTED`).

    Special cases: ``alpha=0`` is "CLoss (Dice)"; ``context=False`` is "Thin CLoss" (error skeleton
    only); ``gamma=0`` is plain Dice & CE (the mask is then not computed at all).

    The paper uses ``gamma`` 0.08, 0.1 and 0.2 and recommends ``gamma < 0.5``; on new data it suggests
    exploring 0.3, 0.1, 0.03. The loss is meant for fine-tuning a network pretrained with ``L_pixel``
    for 5 % of the pretraining length.

    Args:
        gamma: weight ``γ ∈ [0, 1]`` of the restricted term.
        alpha: weight ``α ∈ [0, 1]`` of cross-entropy in ``L_pixel``.
        include_background: if False, channel 0 (background) is excluded from the Dice terms and gets
            no critical mask. Ignored for single-channel input.
        to_onehot_y: convert a class-index ``target`` ``(B, 1, *spatial)`` to one-hot.
        sigmoid: apply a sigmoid to the logits (binarized as logit > 0).
        softmax: apply a softmax over the channels (binarized as the arg-max).
        other_act: another activation for the Dice terms (binarized as activation > 0.5).
        skeleton: ``"soft"`` (clDice's soft skeleton, as the paper) or ``"exact"`` (scikit-image).
        iters: soft-skeleton iterations (paper: 50).
        context: ``False`` gives Thin CLoss.
        spacing: voxel size for the mask's anisotropic distances, or ``None``.
        reduction: ``"mean"`` or ``"sum"`` (as ``DiceCELoss``).
        smooth_nr: Dice numerator smoothing (MONAI default).
        smooth_dr: Dice denominator smoothing (MONAI default).
        batch: sum the Dice terms over the batch before dividing (as ``DiceLoss(batch=True)``).
        restricted: the reading of the restricted term ``L_pixel ⊙ M`` (see above): ``"hadamard"`` (the
            default) or ``"mask_mean"``.

    Raises:
        ValueError: ``gamma``/``alpha`` outside ``[0, 1]``, unknown ``skeleton``, non-positive ``iters``
            or ``spacing``, unsupported ``reduction``, more than one activation.

    Example:
        >>> loss = ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True)
        >>> logits = torch.randn(2, 2, 64, 64, requires_grad=True)
        >>> label = (torch.rand(2, 1, 64, 64) > 0.9).float()
        >>> loss(logits, label).backward()
    """

    def __init__(
        self,
        gamma: float = 0.2,
        alpha: float = 0.5,
        include_background: bool = False,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        skeleton: str = "soft",
        iters: int = 50,
        context: bool = True,
        spacing: float | Sequence[float] | None = None,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        restricted: str = DEFAULT_RESTRICTED,
    ) -> None:
        super().__init__()
        self.restricted = check_option(restricted, RESTRICTED_READINGS, "restricted")
        self.gamma = check_unit_interval(gamma, "gamma")
        self.alpha = check_unit_interval(alpha, "alpha")
        check_option(skeleton, SKELETON_METHODS, "skeleton")
        check_activation(sigmoid, softmax, other_act)
        if other_act is not None and not callable(other_act):
            raise ValueError(f"other_act must be None or callable, got {type(other_act).__name__}.")
        self.reduction = look_up_option(reduction, DiceCEReduction).value
        self.iters = check_positive_int(iters, "iters")
        if spacing is not None:  # the length is checked against the input's spatial dims at each call
            check_spacing(spacing, len(spacing) if isinstance(spacing, Sequence) else 1)
        self.spacing = spacing
        self.skeleton = skeleton
        self.context = bool(context)
        self.include_background = include_background
        self.batch = batch
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.pixel_loss = pixel_loss(
            self.alpha, include_background, sigmoid, softmax, other_act, self.reduction, smooth_nr, smooth_dr, batch
        )
        self.masked_dice = DiceLoss(reduction="none", smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits, shape ``(B, N, H, W)`` or ``(B, N, H, W, D)``.
            target: binary one-hot target of the same shape, or class indices ``(B, 1, ...)`` with
                ``to_onehot_y=True``.

        Returns:
            the scalar loss.

        Raises:
            ValueError: mismatched shapes, wrong number of dimensions, non-binary target.
        """
        input = input.float()  # mixed precision: the loss, its mask and restricted terms in float32
        target = prepare_target(input, target, self.to_onehot_y)  # the call's one check of the target
        pixel = self.pixel_loss(input, target)
        if self.gamma == 0.0:
            return pixel
        first = 0 if (self.include_background or input.shape[1] == 1) else 1
        mask = critical_mask_kernel(  # the target is checked, the prediction binary by construction
            binarize_prediction(input, self.sigmoid, self.softmax, self.other_act)[:, first:],
            target[:, first:].bool(),
            skeleton=self.skeleton,
            iters=self.iters,
            context=self.context,
            spacing=check_spacing(self.spacing, input.dim() - 2),
        ).to(input.dtype)
        restricted = (1.0 - self.alpha) * self._restricted_dice(input, target, mask, first)
        restricted = restricted + self.alpha * self._restricted_ce(input, target, mask)
        return (1.0 - self.gamma) * pixel + self.gamma * restricted

    def _restricted_dice(
        self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, first: int
    ) -> torch.Tensor:
        """Soft Dice of ``ŷ·M`` against ``y·M``: ``"mask_mean"`` averages over the (sample, class) pairs with a
        non-empty mask, ``"hadamard"`` over all pairs (an empty mask adds a loss of 0). 0 when every mask is
        empty; computed without reading the tensors on the host."""
        probs = activate(input, self.sigmoid, self.softmax, self.other_act)[:, first:]
        dice = self.masked_dice(probs * mask, target[:, first:].to(mask.dtype) * mask)
        dice = dice.reshape(-1, mask.shape[1])  # (B, C), or (1, C) when the Dice sums over the batch
        non_empty = mask.flatten(2).sum(-1) > 0
        if self.batch:
            non_empty = non_empty.any(0, keepdim=True)
        total = (dice * non_empty).sum()
        if self.reduction == "sum":
            return total
        count = non_empty.sum() if self.restricted == "mask_mean" else non_empty.numel()
        return total / torch.clamp(torch.as_tensor(count, device=total.device, dtype=total.dtype), min=1)

    def _restricted_ce(self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-pixel cross-entropy summed over the masks, divided by their size (``"mask_mean"``) or by the
        number of mask entries, as the unrestricted mean (``"hadamard"``); 0 for empty masks, no host read."""
        weighted = (pixelwise_cross_entropy(input, target) * mask).sum()
        if self.reduction == "sum":
            return weighted
        count = mask.sum() if self.restricted == "mask_mean" else torch.tensor(float(mask.numel()), device=mask.device)
        return weighted / torch.clamp(count.to(weighted.dtype), min=1)
