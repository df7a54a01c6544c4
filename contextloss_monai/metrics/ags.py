"""AGS: the share of the label's centre line that the prediction covers (paper Sec. 2.2; our reading)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

from contextloss_monai.metrics.base import TopologyMetric, per_tiled_image
from contextloss_monai.topology.skeleton import skeletonize_exact_many
from contextloss_monai.topology.tiling import tile_slices

__all__ = ["AGSMetric", "compute_ags"]


def ags_of_image(
    pred: np.ndarray,
    label: np.ndarray,
    patch_size: Sequence[int] | int | None = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> float:
    """AGS of one binary image pair: mean over the tiles whose label skeleton is not empty, NaN if none is.
    The label skeletons come from :func:`skeletonize_exact_many` (``num_workers``, disk cache ``cache_dir``)."""
    tiles = tile_slices(label.shape, patch_size)
    skeletons = skeletonize_exact_many([label[t] for t in tiles], num_workers, cache_dir)
    values = []
    for tile, skel in zip(tiles, skeletons):
        length = np.count_nonzero(skel)
        if length:
            values.append(100.0 * np.count_nonzero(skel & pred[tile]) / length)
    return float(np.mean(values)) if values else float("nan")


def compute_ags(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = True,
    patch_size: Sequence[int] | int | None = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
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
        num_workers: processes that compute the label skeletons (``None``: the available cores, for large
            images; 1: this process). The result does not depend on it.
        cache_dir: a folder where the label skeletons are kept across evaluations (shared with clDice; keyed
            by content: a changed label is recomputed); ``None``: none.

        mask: field of view ``(B, 1, *spatial)``, inside where greater than 0: prediction and label count as
            background outside it, so the tiles entirely outside are empty and skipped; ``None``: the whole image.

    Returns:
        a float tensor ``(B, C)`` in [0, 100] (NaN for an empty label).

    Raises:
        ValueError: mismatched shapes, not 4D/5D, non-binary input, bad ``patch_size``.
    """
    image_fn = functools.partial(ags_of_image, num_workers=num_workers, cache_dir=cache_dir)
    return per_tiled_image(y_pred, y, include_background, patch_size, image_fn, mask)


class AGSMetric(TopologyMetric):
    """AGS (%) accumulated over batches (:class:`~contextloss_monai.metrics.TopologyMetric`), values from
    :func:`compute_ags`; images without label give NaN, which the reductions skip."""

    compute_fn = staticmethod(compute_ags)
