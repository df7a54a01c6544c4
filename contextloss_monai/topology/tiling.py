"""Non-overlapping tiles that cover a whole image: the patch protocol of the topology metrics."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

__all__ = ["check_tile_shape", "tile_slices"]


def tile_slices(shape: Sequence[int], tile_shape: Sequence[int] | None) -> list[tuple[slice, ...]]:
    """
    The non-overlapping tiles that cover an image of ``shape`` in raster order (last axis fastest); the
    last tile per axis is clipped to the image. ``None`` gives the whole image as one tile.

    Raises:
        ValueError: when ``tile_shape`` has the wrong length, a non-positive size, or a size larger than
            the image.
    """
    tile_shape = check_tile_shape(tile_shape, shape)
    starts = [range(0, n, t) for n, t in zip(shape, tile_shape)]
    return [tuple(slice(s, min(s + t, n)) for s, t, n in zip(c, tile_shape, shape)) for c in product(*starts)]


def check_tile_shape(tile_shape: Sequence[int] | int | None, shape: Sequence[int], name: str = "patch_size") -> tuple:
    """``tile_shape`` as a tuple of ints per axis of ``shape`` (an int is used for every axis; ``None`` or a
    ``-1``/``None`` entry means the whole axis).

    Raises:
        ValueError: wrong length, non-positive size, or a size larger than the image.
    """
    shape = tuple(int(n) for n in shape)
    if tile_shape is None:
        return shape
    if isinstance(tile_shape, (int, np.integer)):
        tile_shape = (int(tile_shape),) * len(shape)
    tile_shape = tuple(tile_shape)
    if len(tile_shape) != len(shape):
        raise ValueError(f"{name} must have {len(shape)} entries for an image of shape {shape}, got {tile_shape}.")
    out = []
    for t, n in zip(tile_shape, shape):
        if t is None or t == -1:
            out.append(n)
            continue
        if not isinstance(t, (int, np.integer)) or t <= 0:
            raise ValueError(f"{name} must hold positive integers, got {tile_shape}.")
        if t > n:
            raise ValueError(f"{name} {tile_shape} is larger than the image {shape}.")
        out.append(int(t))
    return tuple(out)
