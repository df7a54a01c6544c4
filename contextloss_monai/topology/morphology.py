"""Binary erosion and dilation by one pixel with boolean shifts, for NumPy arrays and torch tensors alike.

Outside the image counts as foreground for the erosion and as background for the dilation, which is
what min- and max-pooling with padding do (MONAI's ``soft_erode`` / ``soft_dilate`` on 0/1 maps)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["dilate_box", "erode_cross"]

BoolArray = np.ndarray | torch.Tensor


def _copy(x: BoolArray) -> BoolArray:
    return x.clone() if isinstance(x, torch.Tensor) else x.copy()


def _halves(ndim: int, axis: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index tuples selecting positions ``1..n-1`` and ``0..n-2`` along ``axis``."""
    upper, lower = [slice(None)] * ndim, [slice(None)] * ndim
    upper[axis], lower[axis] = slice(1, None), slice(None, -1)
    return tuple(upper), tuple(lower)


def erode_cross(mask: BoolArray, axes: Iterable[int]) -> BoolArray:
    """Erosion with the axis-aligned cross (each pixel and its two neighbours along each of ``axes``)."""
    out = _copy(mask)
    for axis in axes:
        upper, lower = _halves(mask.ndim, axis)
        out[upper] &= mask[lower]
        out[lower] &= mask[upper]
    return out


def dilate_box(mask: BoolArray, axes: Iterable[int]) -> BoolArray:
    """Dilation with the 3x3(x3) box over ``axes`` (separable: one pixel along each axis in turn)."""
    out = mask
    for axis in axes:
        upper, lower = _halves(mask.ndim, axis)
        grown = _copy(out)
        grown[upper] |= out[lower]
        grown[lower] |= out[upper]
        out = grown
    return out
