"""The clDice metric (Shit et al., CVPR 2021) with the exact skeleton, over tiles with the paper's
correction for empty patches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from contextloss_monai.metrics.base import TopologyMetric, per_tiled_image
from contextloss_monai.topology.skeleton import skeletonize_exact
from contextloss_monai.topology.tiling import tile_slices

__all__ = ["ClDiceMetric", "cldice_of_tile", "compute_cldice"]


def cldice_of_tile(pred: np.ndarray, label: np.ndarray) -> float:
    """
    clDice of one tile: ``2·Tprec·Tsens / (Tprec + Tsens)`` with ``Tprec = |skel(P) ∧ Y| / |skel(P)|`` and
    ``Tsens = |skel(Y) ∧ P| / |skel(Y)|``.

    Empty-tile rules: both ``P`` and ``Y`` empty → NaN (the tile is skipped by the caller); exactly one
    empty → 0 (a missed or a false structure); ``Tprec + Tsens = 0`` → 0.
    """
    has_pred, has_label = pred.any(), label.any()
    if not has_pred and not has_label:
        return float("nan")
    if not has_pred or not has_label:
        return 0.0
    skel_pred, skel_label = skeletonize_exact(pred), skeletonize_exact(label)
    precision = np.count_nonzero(skel_pred & label) / max(np.count_nonzero(skel_pred), 1)
    sensitivity = np.count_nonzero(skel_label & pred) / max(np.count_nonzero(skel_label), 1)
    total = precision + sensitivity
    return 0.0 if total == 0 else 2.0 * precision * sensitivity / total


def cldice_of_image(pred: np.ndarray, label: np.ndarray, patch_size: Sequence[int] | int | None = None) -> float:
    """clDice of one image: mean over the tiles where prediction or label is not empty, NaN if there is none."""
    values = [cldice_of_tile(pred[tile], label[tile]) for tile in tile_slices(label.shape, patch_size)]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def compute_cldice(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = True,
    patch_size: Sequence[int] | int | None = None,
) -> torch.Tensor:
    """
    clDice per sample and channel with the exact skeleton (scikit-image), averaged over non-overlapping
    tiles. The correction for empty patches: a tile where prediction and label are both empty has nothing
    to compare and is skipped — it is neither NaN in the mean nor a spurious 0 (nor a free 1); an image
    without any foreground in prediction and label gives NaN, left out by MONAI's reductions.

    Args:
        y_pred: binarized prediction, one-hot ``(B, C, H, W)`` or ``(B, C, H, W, D)``; its skeleton gives Tprec.
        y: binary label of the same shape; its skeleton gives Tsens.
        include_background: whether to evaluate the first channel.
        patch_size: tile size per spatial axis (an int for all axes), ``None`` for the whole image; tiles
            empty in both prediction and label are skipped.

    Returns:
        a float tensor ``(B, C)`` in [0, 1].

    Raises:
        ValueError: mismatched shapes, not 4D/5D, non-binary input, bad ``patch_size``.
    """
    return per_tiled_image(y_pred, y, include_background, patch_size, cldice_of_image)


class ClDiceMetric(TopologyMetric):
    """clDice with the exact skeleton, a MONAI cumulative metric (:class:`~contextloss_monai.metrics.TopologyMetric`
    with ``patch_size``); see :func:`compute_cldice`."""

    compute_fn = staticmethod(compute_cldice)
