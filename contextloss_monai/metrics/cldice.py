"""The clDice metric (Shit et al., CVPR 2021) with the exact skeleton, over tiles with the paper's
correction for empty patches."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

from contextloss_monai.metrics.base import TopologyMetric, per_tiled_image
from contextloss_monai.topology.skeleton import skeletonize_exact, skeletonize_exact_many
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
    return _cldice_from_skeletons(pred, label, skeletonize_exact(pred), skeletonize_exact(label))


def cldice_of_image(
    pred: np.ndarray,
    label: np.ndarray,
    patch_size: Sequence[int] | int | None = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> float:
    """clDice of one image: mean over the tiles where prediction or label is not empty, NaN if there is none.
    The tiles' skeletons are computed together (:func:`skeletonize_exact_many`: ``num_workers`` processes; label
    skeletons through the disk cache ``cache_dir``)."""
    tiles = tile_slices(label.shape, patch_size)
    both = [t for t in tiles if pred[t].any() and label[t].any()]
    skeletons = skeletonize_exact_many([pred[t] for t in both] + [label[t] for t in both], num_workers, cache_dir,
                                       on_disk=[False] * len(both) + [True] * len(both))
    skeleton = {id(t): (skeletons[i], skeletons[len(both) + i]) for i, t in enumerate(both)}
    values = []
    for tile in tiles:
        if id(tile) in skeleton:
            values.append(_cldice_from_skeletons(pred[tile], label[tile], *skeleton[id(tile)]))
        elif pred[tile].any() or label[tile].any():
            values.append(0.0)  # a missed or a false structure
    return float(np.mean(values)) if values else float("nan")


def _cldice_from_skeletons(pred: np.ndarray, label: np.ndarray, skel_pred: np.ndarray, skel_label: np.ndarray) -> float:
    precision = np.count_nonzero(skel_pred & label) / max(np.count_nonzero(skel_pred), 1)
    sensitivity = np.count_nonzero(skel_label & pred) / max(np.count_nonzero(skel_label), 1)
    total = precision + sensitivity
    return 0.0 if total == 0 else 2.0 * precision * sensitivity / total


def compute_cldice(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = True,
    patch_size: Sequence[int] | int | None = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
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
        num_workers: processes that compute the tiles' skeletons (``None``: the available cores, for large
            images; 1: this process). The result does not depend on it.
        cache_dir: a folder where the label skeletons are kept across evaluations (keyed by content: a
            changed label is recomputed); ``None``: none.

        mask: field of view ``(B, 1, *spatial)``, inside where greater than 0: prediction and label count as
            background outside it, so the tiles entirely outside are empty and skipped; ``None``: the whole image.

    Returns:
        a float tensor ``(B, C)`` in [0, 1].

    Raises:
        ValueError: mismatched shapes, not 4D/5D, non-binary input, bad ``patch_size``.
    """
    image_fn = functools.partial(cldice_of_image, num_workers=num_workers, cache_dir=cache_dir)
    return per_tiled_image(y_pred, y, include_background, patch_size, image_fn, mask)


class ClDiceMetric(TopologyMetric):
    """clDice with the exact skeleton, a MONAI cumulative metric (:class:`~contextloss_monai.metrics.TopologyMetric`
    with ``patch_size``); see :func:`compute_cldice`."""

    compute_fn = staticmethod(compute_cldice)
