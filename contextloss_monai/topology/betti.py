"""Betti numbers of binary 2D and 3D masks, whole or tile by tile, from connected components and
the Euler characteristic (no persistent homology).

A binary image is read as a cubical complex, with the usual pair of dual connectivities:

* foreground 8 (2D) / 26 (3D), background 4 / 6 — every foreground pixel is a *closed* unit square
  (cube), so pixels that share only a corner touch;
* foreground 4 / 6, background 8 / 26 — the foreground pixels are the vertices of a complex with an
  edge between axis neighbours, a square for every 2x2 block and a cube for every 2x2x2 block.

The image is surrounded by background: background touching the border is *outside*, never a hole
(2D) or a cavity (3D). Then

* ``β0`` = number of foreground components;
* 2D: ``β1 = β0 − χ`` (holes);
* 3D: ``β2`` = number of background components that do not reach the border (cavities) and
  ``β1 = β0 + β2 − χ`` (tunnels / handles),

where ``χ`` is the Euler characteristic of the complex, counted from local windows: for the closed
pixel complex a window of ``w`` pixels is one cell when any of its pixels is foreground, for the
vertex complex when all of them are (``χ = Σ_windows (−1)^(dim) ...``, see :func:`_euler_per_tile`).

Tiling cuts the image into non-overlapping tiles (the last tile per axis clipped) and treats each
tile as an image of its own. It is done in one pass: the tiles are laid out with one background
plane between neighbours, so components and windows never cross from one tile into another.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from monai.config import NdarrayOrTensor

from contextloss_monai.checks import DEFAULT_CONNECTIVITY, as_bool_array, check_connectivity, check_tile_shape
from contextloss_monai.topology.components import component_lower_corners, label_components

__all__ = ["DEFAULT_CONNECTIVITY", "betti_kernel", "betti_numbers", "component_count_kernel", "tile_betti_numbers", "tile_component_counts"]

_DUAL = {4: 8, 8: 4, 6: 26, 26: 6}


def _spread_tiles(mask: np.ndarray, tile_shape: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mask with one background plane inserted between neighbouring tiles and one around the border,
    and, per axis, the index of the first padded position of every tile."""
    cuts = [np.arange(t, n, t) for n, t in zip(mask.shape, tile_shape)]
    out = mask
    for axis, c in enumerate(cuts):
        if len(c):
            out = np.insert(out, c, False, axis=axis)
    out = np.pad(out, 1)
    starts = [np.arange(0, n, t) + np.arange(len(np.arange(0, n, t))) + 1 for n, t in zip(mask.shape, tile_shape)]
    return out, starts


def _windows(arr: np.ndarray, width: tuple[int, ...], reduce: str) -> np.ndarray:
    """For every lower corner ``i`` in ``[0, n − 1)`` per axis: whether ``any``/``all`` of the pixels in the
    window ``i .. i + width − 1`` are set (windows of width 1 drop their last, background, position)."""
    n = arr.shape
    out = None
    for offset in product(*[range(w) for w in width]):
        view = arr[tuple(slice(o, o + k - 1) for o, k in zip(offset, n))]
        if out is None:
            out = view.copy()
        elif reduce == "any":
            out |= view
        else:
            out &= view
    return out


def _euler_per_tile(spread: np.ndarray, starts: list[np.ndarray], closed: bool) -> np.ndarray:
    """Euler characteristic of every tile of a spread mask (see :func:`_spread_tiles`), raster order.

    A window of ``w`` pixels with ``k`` axes of width 2 is a cell of dimension ``ndim − k`` (closed pixel
    complex, cell present when any pixel is set) or of dimension ``k`` (vertex complex, all set). The
    window at lower corner ``i`` belongs to the tile whose padded range is ``[start − 1, end]``: these
    ranges partition the positions and every window with a set pixel lies in one tile.
    """
    ndim = spread.ndim
    chi = np.zeros(tuple(s - 1 for s in spread.shape), dtype=np.int8)
    for width in product((1, 2), repeat=ndim):
        k = sum(w == 2 for w in width)
        dim = ndim - k if closed else k
        cells = _windows(spread, width, "any" if closed else "all")
        if dim % 2:
            chi -= cells
        else:
            chi += cells
    for axis, s in enumerate(starts):
        chi = np.add.reduceat(chi, s - 1, axis=axis, dtype=np.int64)
    return chi.reshape(-1)


def _count_components_per_tile(spread: np.ndarray, starts: list[np.ndarray], connectivity: int) -> np.ndarray:
    """Number of components of ``spread`` per tile, found in one labelling of the whole spread array."""
    labels, n = label_components(spread, connectivity)
    n_tiles = int(np.prod([len(s) for s in starts]))
    if n == 0 or n_tiles == 1:  # one tile holds every component: no need to place them
        return np.full(n_tiles, n, dtype=np.int64)
    first, _ = component_lower_corners(labels, n)
    tile_index = np.zeros(n, dtype=np.int64)
    for axis, s in enumerate(starts):
        position = np.clip(np.searchsorted(s, first[:, axis], side="right") - 1, 0, None)
        tile_index = tile_index * len(s) + position
    return np.bincount(tile_index, minlength=n_tiles)


def tile_component_counts(
    mask: NdarrayOrTensor, tile_shape: Sequence[int] | int | None = None, connectivity: int | None = None
) -> np.ndarray:
    """
    ``β0`` (number of connected components) of every non-overlapping tile of one binary 2D or 3D mask,
    without the Euler characteristic: the part of :func:`tile_betti_numbers` that e0-Gt needs.

    Args:
        mask: binary array or tensor of shape ``(H, W)`` or ``(H, W, D)``.
        tile_shape: tile size per axis (``None`` = the whole image); the last tile per axis is clipped.
        connectivity: foreground connectivity, 8 / 26 (default) or 4 / 6.

    Returns:
        an ``int64`` array ``(n_tiles,)``, tiles in raster order.

    Raises:
        ValueError: wrong dimensionality, non-binary input, bad ``tile_shape`` or ``connectivity``.
    """
    arr, tiles, connectivity = _checked_mask(mask, tile_shape, connectivity)
    return component_count_kernel(arr, tiles, connectivity)


def _checked_mask(mask: NdarrayOrTensor, tile_shape, connectivity) -> tuple[np.ndarray, tuple[int, ...], int]:
    """The checks of the public tile functions: a 2D / 3D binary mask, its tile shape and connectivity."""
    arr = as_bool_array(mask, "mask")
    if arr.ndim not in (2, 3):
        raise ValueError(f"mask must be a 2D (H, W) or 3D (H, W, D) array, got shape {arr.shape}.")
    return arr, check_tile_shape(tile_shape, arr.shape), check_connectivity(connectivity, arr.ndim)


def component_count_kernel(arr: np.ndarray, tiles: tuple[int, ...], connectivity: int) -> np.ndarray:
    """Kernel of :func:`tile_component_counts` for a checked bool array, tile shape and connectivity
    (callers check; this trusts them)."""
    spread, starts = _spread_tiles(arr, tiles)
    return _count_components_per_tile(spread, starts, connectivity)


def tile_betti_numbers(
    mask: NdarrayOrTensor, tile_shape: Sequence[int] | int | None = None, connectivity: int | None = None
) -> np.ndarray:
    """
    Betti numbers of every non-overlapping tile of one binary 2D or 3D mask.

    Args:
        mask: binary array or tensor of shape ``(H, W)`` or ``(H, W, D)``.
        tile_shape: tile size per axis (an int for all axes, ``None`` = the whole image); the last tile
            per axis is clipped to the image.
        connectivity: foreground connectivity, 8 / 26 (default) or 4 / 6; the background uses the dual.

    Returns:
        an ``int64`` array ``(n_tiles, ndim)``: ``(β0, β1)`` per tile in 2D, ``(β0, β1, β2)`` in 3D, tiles in
        raster order (see :func:`tile_slices`).

    Raises:
        ValueError: wrong dimensionality, non-binary input, bad ``tile_shape`` or ``connectivity``.
    """
    return betti_kernel(*_checked_mask(mask, tile_shape, connectivity))


def betti_kernel(arr: np.ndarray, tiles: tuple[int, ...], connectivity: int) -> np.ndarray:
    """Kernel of :func:`tile_betti_numbers` for a checked bool array, tile shape and connectivity
    (callers check; this trusts them)."""
    spread, starts = _spread_tiles(arr, tiles)
    closed = connectivity in (8, 26)
    b0 = _count_components_per_tile(spread, starts, connectivity)
    chi = _euler_per_tile(spread, starts, closed)
    if arr.ndim == 2:
        return np.stack([b0, b0 - chi], axis=1)
    # cavities: background components that do not reach the tile border; everything reaching a border is
    # joined to the outer component through the separating planes, which holds the corner voxel
    background = ~spread
    inner = _count_components_per_tile(background, starts, _DUAL[connectivity])
    outer_tile = 0  # the outer component starts at the padded corner, which the first tile's range holds
    inner[outer_tile] -= 1
    return np.stack([b0, b0 + inner - chi, inner], axis=1)


def betti_numbers(mask: NdarrayOrTensor, connectivity: int | None = None) -> tuple[int, ...]:
    """
    Betti numbers of one binary 2D or 3D mask.

    Args:
        mask: binary array or tensor of shape ``(H, W)`` or ``(H, W, D)``.
        connectivity: foreground connectivity, 8 (2D) / 26 (3D) by default, or 4 / 6; the background uses
            the dual connectivity (4 / 6, or 8 / 26). Background touching the border is outside.

    Returns:
        ``(β0, β1)`` for 2D, ``(β0, β1, β2)`` for 3D; an empty mask gives all zeros.

    Raises:
        ValueError: when ``mask`` is not 2D/3D or not binary, or ``connectivity`` is not supported.

    Example:
        >>> ring = np.zeros((7, 7), bool); ring[1:6, 1:6] = True; ring[3, 3] = False
        >>> betti_numbers(ring)
        (1, 1)
    """
    return tuple(int(v) for v in tile_betti_numbers(mask, None, connectivity)[0])
