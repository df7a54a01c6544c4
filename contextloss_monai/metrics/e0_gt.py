"""e0-Gt: the Betti-0 error of the label masked by the prediction (paper Sec. 2.2; our reading)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from contextloss_monai.checks import check_connectivity, check_tile_shape
from contextloss_monai.metrics.base import (
    TopologyMetric,
    mean_over_tiles,
    per_sample_and_channel,
    prepare_binary_pair,
    restrict_to_field_of_view,
    tiles_inside,
)
from contextloss_monai.topology.betti import component_count_kernel

__all__ = ["E0GtMetric", "compute_e0_gt"]


def compute_e0_gt(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = True,
    patch_size: Sequence[int] | int | None = None,
    connectivity: int | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """
    e0-Gt ``= |β0(P ∧ Y) − β0(Y)|`` per tile, averaged over the non-overlapping tiles that cover the image
    (with a field of view ``mask``: prediction and label background outside it, the tiles entirely outside
    left out of the mean, NaN for an image with no tile inside).

    This is our reading of the paper's new metric (its formula is not in the text): the label restricted
    to the prediction splits into more components wherever a gap interrupts a structure, so every missed
    connection counts, while false-positive blobs outside the label cannot cancel a split (as they can in
    ``e0``). Lower is better; 0 for a prediction that covers the label without gaps.

    Args:
        y_pred: binarized prediction, one-hot ``(B, C, H, W)`` or ``(B, C, H, W, D)``.
        y: binary label of the same shape.
        include_background: whether to evaluate the first channel.
        patch_size: tile size per spatial axis (an int for all axes), ``None`` for the whole image.
        connectivity: foreground connectivity 8 / 26 (default) or 4 / 6.
        mask: field of view ``(B, 1, *spatial)``, inside where greater than 0; ``None``: the whole image.

    Returns:
        a float tensor ``(B, C)``.

    Raises:
        ValueError: mismatched shapes, not 4D/5D, non-binary input, bad ``patch_size`` or ``connectivity``.

    Example:
        >>> y = torch.zeros(1, 1, 8, 8); y[..., 2, 1:7] = 1
        >>> p = y.clone(); p[..., 2, 4] = 0; p[..., 6, 6] = 1   # one gap, one false-positive blob
        >>> compute_e0_gt(p, y).item()
        1.0
    """
    pred, label = prepare_binary_pair(y_pred, y, include_background)
    pred, label, inside = restrict_to_field_of_view(pred, label, mask)
    connectivity = check_connectivity(connectivity, pred.ndim - 2)
    tiles = check_tile_shape(patch_size, pred.shape[2:])

    def e0_gt(p: np.ndarray, t: np.ndarray, i: np.ndarray | None = None) -> float:
        masked = component_count_kernel(p & t, tiles, connectivity)
        errors = np.abs(masked - component_count_kernel(t, tiles, connectivity))
        return float(mean_over_tiles(errors, None if i is None else tiles_inside(i, tiles)))

    return per_sample_and_channel(pred, label, e0_gt, inside)


class E0GtMetric(TopologyMetric):
    """
    e0-Gt as a MONAI cumulative metric; see :func:`compute_e0_gt`.

    Args:
        include_background: whether to evaluate the first channel.
        reduction: MONAI reduction for :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the number of non-NaN values.
        patch_size: tile size (``None`` = whole image).
        connectivity: foreground connectivity (default 8 / 26).
    """

    compute_fn = staticmethod(compute_e0_gt)
