"""Lee, Kashyap and Chu's 3D thinning — scikit-image's ``skeletonize`` of a 3D array — compiled with Numba,
voxel for voxel the same result, without re-examining voxels whose neighbourhood has not changed.

The algorithm (Lee et al., CVGIP 56(6), 1994, as scikit-image 0.16–0.26 implements it) repeats rounds until a
round deletes nothing. A round visits the six border directions in the order −r, +r, +c, −c, +p, −p of an
array indexed ``(p, r, c)`` (only the first four when the array has a single plane). For each direction it

1. collects, in raster order, the *candidates*: foreground voxels whose neighbour in that direction is
   background, that are not end points (exactly one foreground voxel among their 26 neighbours), whose
   deletion keeps the Euler characteristic of their 3×3×3 neighbourhood (26-connected foreground), and
   that are simple (their foreground neighbours form at most one 26-connected component); then
2. re-checks the candidates one after another on the changing image and deletes each that is still
   simple (that re-check tests simplicity only, as scikit-image's does).

scikit-image scans every voxel of the array for every direction of every round. Whether a voxel is a
candidate depends only on its 3×3×3 neighbourhood, and voxels are only ever deleted, so a voxel found not to
be a candidate for a direction stays so until one of its neighbours is deleted. This implementation
remembers that per voxel and direction (one bit), forgets it for the 26 neighbours of each deleted voxel and
walks only the foreground voxels: the same candidates in the same order, hence the same skeleton (tested
against scikit-image), at a fraction of the work on large volumes.
"""

from __future__ import annotations

import numpy as np
from monai.config import NdarrayOrTensor

from contextloss_monai.checks import as_bool_array

__all__ = ["precompile", "thin_3d"]

# the 26 neighbours of a voxel, (dp, dr, dc) in raster order without the centre
_NEIGHBOURS = np.array(
    [(dp, dr, dc) for dp in (-1, 0, 1) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dp, dr, dc) != (0, 0, 0)],
    dtype=np.int64,
)
# bit masks over the 26 neighbours: which neighbours are 26-adjacent to neighbour i (simple-point test)
_ADJACENT = np.array(
    [
        sum(1 << j for j in range(26) if j != i and np.abs(_NEIGHBOURS[i] - _NEIGHBOURS[j]).max() <= 1)
        for i in range(26)
    ],
    dtype=np.int64,
)


def _cells_of_centre_cube() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The faces, edges and vertices of the centre voxel's closed cube, each as the bit mask of the neighbours
    whose closed cube contains that cell (a cell is covered by the neighbourhood when any of them is set).

    A boundary cell lies in the direction of the neighbour it is named after (one, two or three non-zero
    coordinates: face, edge, vertex); neighbour ``n`` contains it when, on the cell's non-zero axes, ``n``
    has the cell's coordinate or 0 (not all 0), and 0 on the other axes.
    """
    cells: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for cell in _NEIGHBOURS:
        on = cell != 0
        bits = 0
        for j, n in enumerate(_NEIGHBOURS):
            if np.all((n[on] == cell[on]) | (n[on] == 0)) and np.any(n[on] != 0) and not np.any(n[~on]):
                bits |= 1 << j
        cells[int(on.sum())].append(bits)
    return np.array(cells[1]), np.array(cells[2]), np.array(cells[3])


_FACES, _EDGES, _VERTICES = _cells_of_centre_cube()


def _neighbourhood(flat: np.ndarray, index: int, offsets: np.ndarray) -> int:
    """The 26 neighbours of voxel ``index`` of the padded, flattened image as a bit mask."""
    bits = 0
    for j in range(26):
        if flat[index + offsets[j]]:
            bits |= 1 << j
    return bits


def _is_simple(bits: int, adjacent: np.ndarray) -> bool:
    """Whether the foreground neighbours ``bits`` of a voxel form at most one 26-connected component."""
    component = bits & -bits
    frontier = component
    while frontier:
        lowest = frontier & -frontier
        frontier ^= lowest
        j = 0
        while lowest > 1:
            lowest >>= 1
            j += 1
        new = adjacent[j] & bits & ~component
        component |= new
        frontier |= new
    return component == bits


def _is_candidate(bits: int, adjacent: np.ndarray, faces: np.ndarray, edges: np.ndarray, vertices: np.ndarray) -> bool:
    """Whether a border voxel with neighbourhood ``bits`` is a candidate for deletion: not an end point (nor
    isolated: deleting a lone voxel changes the Euler characteristic), Euler invariant, simple."""
    if bits & (bits - 1) == 0:
        return False
    # Euler invariance: deleting the centre cube c from the union A of its neighbours' cubes changes the Euler
    # characteristic by 1 − χ(A ∩ c), and A ∩ c is the union of the covered cells of c's boundary
    chi = 0
    for mask in faces:
        chi += (bits & mask) != 0
    for mask in edges:
        chi -= (bits & mask) != 0
    for mask in vertices:
        chi += (bits & mask) != 0
    if chi != 1:
        return False
    return _is_simple(bits, adjacent)


def _thin_flat(flat, n_planes, offsets, directions, adjacent, faces, edges, vertices) -> None:  # pragma: no cover - compiled
    """Thin the padded, flattened ``uint8`` image in place (see the module's docstring)."""
    n_directions = 4 if n_planes == 3 else 6
    live = np.nonzero(flat)[0]
    n_live = live.size
    known = np.zeros(flat.size, np.uint8)  # bit d: not a candidate for direction d, neighbourhood unchanged since
    candidates = np.empty(n_live, np.int64)
    while True:
        unchanged = 0
        for d in range(n_directions):
            step, bit = directions[d], np.uint8(1 << d)
            n_candidates = 0
            for k in range(n_live):
                index = live[k]
                if flat[index] == 0 or known[index] & bit:
                    continue
                if flat[index + step] != 0 or not _is_candidate(_neighbourhood(flat, index, offsets), adjacent, faces, edges, vertices):
                    known[index] |= bit
                    continue
                candidates[n_candidates] = index
                n_candidates += 1
            changed = False
            for k in range(n_candidates):  # sequential re-check on the changing image: simplicity only
                index = candidates[k]
                if _is_simple(_neighbourhood(flat, index, offsets), adjacent):
                    flat[index] = 0
                    changed = True
                    for j in range(26):
                        known[index + offsets[j]] = 0
            if not changed:
                unchanged += 1
        if unchanged == n_directions:
            return
        kept = 0
        for k in range(n_live):
            if flat[live[k]]:
                live[kept] = live[k]
                kept += 1
        n_live = kept


_COMPILED = None


def precompile():
    """The thinning kernel, compiled by Numba on the first call in a process (Numba caches the machine code on
    disk, so later processes load it). Call it before forking worker processes so that they inherit it."""
    global _COMPILED, _neighbourhood, _is_simple, _is_candidate
    if _COMPILED is None:
        import numba

        _neighbourhood = numba.njit(cache=True)(_neighbourhood)
        _is_simple = numba.njit(cache=True)(_is_simple)
        _is_candidate = numba.njit(cache=True)(_is_candidate)
        _COMPILED = numba.njit(cache=True)(_thin_flat)
    return _COMPILED


def thin_3d(mask: NdarrayOrTensor) -> np.ndarray:
    """
    Skeleton of a binary 3D array by Lee et al.'s thinning: the same array as
    ``skimage.morphology.skeletonize(mask)`` of scikit-image 0.16–0.26, computed faster on large volumes.

    Args:
        mask: a binary array or tensor of shape ``(P, R, C)``.

    Returns:
        a ``bool`` array of the same shape.

    Raises:
        ValueError: when ``mask`` is not 3D or not binary.
    """
    mask = as_bool_array(mask, "mask")
    if mask.ndim != 3:
        raise ValueError(f"mask must be a 3D array (P, R, C), got shape {mask.shape}.")
    padded = np.pad(mask, 1).view(np.uint8)  # the kernel's 0 / 1 bytes, without another copy
    s0, s1 = padded.shape[1] * padded.shape[2], padded.shape[2]
    offsets = _NEIGHBOURS @ np.array([s0, s1, 1])
    directions = np.array([-s1, s1, 1, -1, s0, -s0], dtype=np.int64)  # −r, +r, +c, −c, +p, −p
    precompile()(padded.reshape(-1), padded.shape[0], offsets, directions, _ADJACENT, _FACES, _EDGES, _VERTICES)
    return padded[1:-1, 1:-1, 1:-1].astype(bool)
