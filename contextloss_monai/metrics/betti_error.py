"""Betti errors ``e0``, ``e1`` (``e2``) and ``e = e0 + e1`` averaged over tiles (paper Sec. 2.2, A.7)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from contextloss_monai.checks import check_connectivity, check_option, check_slice_axis, check_tile_shape
from contextloss_monai.metrics.base import (
    TopologyMetric,
    mean_over_tiles,
    per_sample_and_channel,
    prepare_binary_pair,
    restrict_to_field_of_view,
    tiles_inside,
)
from contextloss_monai.topology.betti import betti_kernel
from contextloss_monai.utils import content_key

__all__ = ["BettiErrorMetric", "betti_error_kinds", "compute_betti_error"]


def betti_error_kinds(true_3d: bool) -> tuple[str, ...]:
    """Names of the last axis of :func:`compute_betti_error`: ``("e0", "e1", "e")`` for 2D images and
    slice-wise 3D, ``("e0", "e1", "e2", "e")`` for true 3D (``e`` is always ``e0 + e1``, as in the paper)."""
    return ("e0", "e1", "e2", "e") if true_3d else ("e0", "e1", "e")


_ERRORS_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_ERRORS_CACHE_SIZE = 16


def betti_errors_of_image(
    pred: np.ndarray,
    label: np.ndarray,
    tiles: tuple[int, ...],
    connectivity: int,
    slice_axis: int | None = None,
    inside: np.ndarray | None = None,
) -> np.ndarray:
    """
    Tile-averaged Betti errors of one checked binary image pair ``(H, W)`` or ``(H, W, D)`` (bool arrays; the
    tile shape of the image or of its slices, the connectivity and slice axis as :func:`compute_betti_error`
    checked them); with a field of view ``inside`` (bool, the image's shape) over its tiles only.

    The last results are cached by the pair's content and the options, so the handlers of several error
    kinds (``e``, ``e0``, ``e1`` in a bundle's evaluation) compute the Betti numbers of an image once.

    Returns:
        ``(e0, e1, e)`` (2D, slice-wise) or ``(e0, e1, e2, e)`` (true 3D) as a read-only float array.
    """
    key = (content_key(pred), content_key(label), tiles, connectivity, slice_axis, None if inside is None else content_key(inside))
    if key in _ERRORS_CACHE:
        _ERRORS_CACHE.move_to_end(key)
        return _ERRORS_CACHE[key]
    errors = _betti_errors(pred, label, tiles, connectivity, slice_axis, inside)
    errors.flags.writeable = False
    _ERRORS_CACHE[key] = errors
    if len(_ERRORS_CACHE) > _ERRORS_CACHE_SIZE:
        _ERRORS_CACHE.popitem(last=False)
    return errors


def _betti_errors(
    pred: np.ndarray, label: np.ndarray, tiles: tuple[int, ...], connectivity: int, slice_axis: int | None, inside: np.ndarray | None
) -> np.ndarray:
    if slice_axis is None:
        errors = np.abs(betti_kernel(pred, tiles, connectivity) - betti_kernel(label, tiles, connectivity))
        counted = None if inside is None else tiles_inside(inside, tiles)
    else:
        pred, label = np.moveaxis(pred, slice_axis, 0), np.moveaxis(label, slice_axis, 0)
        errors = np.concatenate(
            [np.abs(betti_kernel(p, tiles, connectivity) - betti_kernel(y, tiles, connectivity)) for p, y in zip(pred, label)]
        )
        counted = None if inside is None else np.concatenate([tiles_inside(i, tiles) for i in np.moveaxis(inside, slice_axis, 0)])
    mean = mean_over_tiles(errors, counted)
    return np.append(mean, mean[0] + mean[1])


def compute_betti_error(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = True,
    patch_size: Sequence[int] | int | None = None,
    connectivity: int | None = None,
    slice_axis: int | None = None,
    error: str | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """
    Betti errors ``e_k = |β_k(P) − β_k(Y)|`` per sample and channel, each averaged over the non-overlapping
    tiles of ``patch_size`` that cover the whole image (the last tile per axis clipped and counted like
    the others); ``e = e0 + e1``. Empty tiles are normal: two empty tiles have error 0. With a field of view
    ``mask``, prediction and label count as background outside it and the tiles entirely outside are left
    out of the mean (NaN for an image with no tile inside).

    Args:
        y_pred: binarized prediction, one-hot ``(B, C, H, W)`` or ``(B, C, H, W, D)``.
        y: binary label of the same shape.
        include_background: whether to evaluate the first channel.
        patch_size: tile size per spatial axis (of the 2D slice with ``slice_axis``), an int for all axes,
            or ``None`` for the whole image (slice).
        connectivity: foreground connectivity 8 / 26 (default) or 4 / 6, background the dual (4 / 6, 8 / 26);
            with ``slice_axis`` a 2D connectivity (8 or 4).
        slice_axis: evaluate a 3D volume as 2D slices along this spatial axis (the paper's protocol for
            Vessap and CLD); ``None`` is true 3D.
        error: return only this kind (``"e0"``, ``"e1"``, ``"e2"``, ``"e"``) as ``(B, C)``.
        mask: field of view ``(B, 1, *spatial)``, inside where greater than 0; ``None``: the whole image.

    Returns:
        a float tensor ``(B, C, K)`` whose last axis holds :func:`betti_error_kinds` — ``(e0, e1, e)`` for 2D
        and slice-wise 3D, ``(e0, e1, e2, e)`` for true 3D — or ``(B, C)`` for one ``error``.

    Raises:
        ValueError: mismatched shapes, not 4D/5D, non-binary input, bad ``patch_size``, ``connectivity``,
            ``slice_axis`` or ``error``.

    Example:
        >>> y = torch.zeros(1, 1, 8, 8); y[..., 2, 1:7] = 1
        >>> p = y.clone(); p[..., 2, 4] = 0                   # the line is split in two
        >>> compute_betti_error(p, y)[0, 0].tolist()           # e0, e1, e
        [1.0, 0.0, 1.0]
    """
    pred, label = prepare_binary_pair(y_pred, y, include_background)
    pred, label, inside = restrict_to_field_of_view(pred, label, mask)
    spatial_dims = pred.ndim - 2
    slice_axis = check_slice_axis(slice_axis, spatial_dims)
    image_dims = 2 if slice_axis is not None else spatial_dims
    connectivity = check_connectivity(connectivity, image_dims)
    image_shape = pred.shape[2:] if slice_axis is None else tuple(np.delete(pred.shape[2:], slice_axis))
    tiles = check_tile_shape(patch_size, image_shape)
    kinds = betti_error_kinds(image_dims == 3)
    if error is not None:
        check_option(error, kinds, "error")
    values = per_sample_and_channel(
        pred, label, lambda p, t, i=None: betti_errors_of_image(p, t, tiles, connectivity, slice_axis, i), inside
    )
    return values if error is None else values[..., kinds.index(error)]


class BettiErrorMetric(TopologyMetric):
    """
    Betti errors as a MONAI cumulative metric; see :func:`compute_betti_error`.

    Args:
        include_background: whether to evaluate the first channel.
        reduction: MONAI reduction for :meth:`aggregate` (over samples and channels; the error kinds stay).
        get_not_nans: whether :meth:`aggregate` also returns the number of non-NaN values.
        patch_size: tile size (``None`` = whole image); for Roads the paper uses 375, HRF 292.
        connectivity: foreground connectivity (default 8 / 26).
        slice_axis: 2D slices along this axis of 3D volumes (Vessap, CLD), ``None`` for true 3D.
        error: keep one kind only (``"e0"``, ``"e1"``, ``"e2"``, ``"e"``), so that :meth:`aggregate` returns a
            scalar (what an Ignite handler logs); ``None`` keeps all kinds on the last axis.

    Example:
        >>> metric = BettiErrorMetric(patch_size=64, error="e")
        >>> metric(y_pred=p, y=y)
        >>> metric.aggregate().item()
    """

    compute_fn = staticmethod(compute_betti_error)

    def __init__(self, *args, error: str | None = None, **kwargs) -> None:
        if error is not None:  # checked here, so that a wrong kind fails before any data
            check_option(error, ("e0", "e1", "e2", "e"), "error")
        super().__init__(*args, error=error, **kwargs)
