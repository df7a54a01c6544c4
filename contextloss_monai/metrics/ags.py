"""AGS: the share of the label's centre line that the prediction covers (paper Sec. 2.2; our reading)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from contextloss_monai.metrics.base import TopologyMetric, per_tiled_image
from contextloss_monai.topology.skeleton import skeletonize_exact
from contextloss_monai.topology.tiling import tile_slices

__all__ = ["AGSMetric", "compute_ags"]


def ags_of_image(pred: np.ndarray, label: np.ndarray, patch_size: Sequence[int] | int | None = None) -> float:
    """AGS of one binary image pair: mean over the tiles whose label skeleton is not empty, NaN if none is."""
    values = []
    for tile in tile_slices(label.shape, patch_size):
        skel = skeletonize_exact(label[tile])
        length = np.count_nonzero(skel)
        if length:
            values.append(100.0 * np.count_nonzero(skel & pred[tile]) / length)
    return float(np.mean(values)) if values else float("nan")


def compute_ags(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = True,
    patch_size: Sequence[int] | int | None = None,
) -> torch.Tensor:
    """
    AGS ``= 100 · |skel(Y) ∧ P| / |skel(Y)|`` (%): how much of the label's centre line (exact skeleton,
    scikit-image) the prediction covers, i.e. has no gap. Higher is better; 100 for a prediction without
    gaps, lowered by each gap's share of the skeleton; false positives do not change it. Our reading of the
    paper's new metric (its formula is not in the text).

    Per tile; the image value is the mean over tiles whose label skeleton is not empty. A tile without label
    has nothing to cover and is skipped; an image without any label gives NaN, which MONAI's reductions
    leave out (counted by ``get_not_nans``), as ``DiceMetric`` does for empty ground truth.

    Args:
        y_pred: binarized prediction, one-hot ``(B, C, H, W)`` or ``(B, C, H, W, D)``: what must cover the centre line.
        y: binary label of the same shape, whose exact skeleton is the centre line.
        include_background: whether to evaluate the first channel.
        patch_size: tile size per spatial axis (an int for all axes), ``None`` for the whole image; tiles
            whose label skeleton is empty are skipped.

    Returns:
        a float tensor ``(B, C)`` in [0, 100] (NaN for an empty label).

    Raises:
        ValueError: mismatched shapes, not 4D/5D, non-binary input, bad ``patch_size``.
    """
    return per_tiled_image(y_pred, y, include_background, patch_size, ags_of_image)


class AGSMetric(TopologyMetric):
    """AGS (%) accumulated over batches (:class:`~contextloss_monai.metrics.TopologyMetric`), values from
    :func:`compute_ags`; images without label give NaN, which the reductions skip."""

    compute_fn = staticmethod(compute_ags)
