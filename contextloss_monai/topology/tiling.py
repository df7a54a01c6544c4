"""Non-overlapping tiles that cover a whole image: the patch protocol of the topology metrics."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

from contextloss_monai.checks import check_tile_shape

__all__ = ["tile_slices"]


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
