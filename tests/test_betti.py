"""Betti numbers against known answers and against cubical persistent homology (gudhi)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contextloss_monai.topology import betti_numbers, tile_betti_numbers, tile_component_counts
from contextloss_monai.topology.tiling import tile_slices


def ring(size=21, r_in=4, r_out=7, centre=None):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = centre or (size // 2, size // 2)
    r = np.hypot(yy - cy, xx - cx)
    return (r >= r_in) & (r <= r_out)


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def test_ring_has_one_hole():
    assert betti_numbers(ring()) == (1, 1)


def test_figure_eight_has_two_holes():
    eight = ring(31, 3, 6, (15, 9)) | ring(31, 3, 6, (15, 21))
    assert betti_numbers(eight) == (1, 2)


def test_blobs_touching_at_a_corner_depend_on_connectivity():
    blobs = np.zeros((8, 8), bool)
    blobs[1:4, 1:4] = True
    blobs[4:7, 4:7] = True
    assert betti_numbers(blobs, connectivity=8) == (1, 0)
    assert betti_numbers(blobs, connectivity=4) == (2, 0)


def test_diagonal_ring_is_a_hole_only_with_8_connectivity():
    diamond = np.zeros((7, 7), bool)
    for y, x in [(1, 3), (2, 2), (2, 4), (3, 1), (3, 5), (4, 2), (4, 4), (5, 3)]:
        diamond[y, x] = True
    assert betti_numbers(diamond, connectivity=8) == (1, 1)
    assert betti_numbers(diamond, connectivity=4) == (8, 0)  # the centre leaks out through 8-connected background


def test_line_crossing_the_image_encloses_nothing():
    line = np.zeros((10, 10), bool)
    line[5, :] = True
    assert betti_numbers(line) == (1, 0)


def test_structures_touching_the_border_enclose_no_hole_with_the_border():
    u_shape = np.zeros((8, 8), bool)
    u_shape[0:6, 1] = u_shape[0:6, 6] = u_shape[5, 1:7] = True  # open towards the top border
    assert betti_numbers(u_shape) == (1, 0)
    frame = np.ones((8, 8), bool)
    frame[1:7, 1:7] = False  # the image border itself: one hole inside
    assert betti_numbers(frame) == (1, 1)


def test_empty_and_full_masks():
    assert betti_numbers(np.zeros((5, 6), bool)) == (0, 0)
    assert betti_numbers(np.zeros((4, 5, 6), bool)) == (0, 0, 0)
    assert betti_numbers(np.ones((4, 5, 6), bool)) == (1, 0, 0)


def test_hollow_sphere_has_a_cavity():
    shape, c = (21, 21, 21), (10, 10, 10)
    shell = ball(shape, c, 8) & ~ball(shape, c, 5)
    assert betti_numbers(shell) == (1, 0, 1)
    assert betti_numbers(shell, connectivity=6) == (1, 0, 1)


def test_solid_torus_has_one_tunnel():
    grid = np.indices((31, 31, 15)).astype(float)
    y, x, z = grid[0] - 15, grid[1] - 15, grid[2] - 7
    torus = (np.hypot(y, x) - 9) ** 2 + z**2 <= 3.5**2
    assert betti_numbers(torus) == (1, 1, 0)
    assert betti_numbers(torch.from_numpy(torus)) == (1, 1, 0)


def test_tube_through_the_volume_touching_the_border():
    tube = np.zeros((9, 9, 12), bool)
    tube[3:6, 3:6, :] = True
    assert betti_numbers(tube) == (1, 0, 0)


def _gudhi_betti(mask: np.ndarray, connectivity: int) -> tuple[int, ...]:
    """Cubical persistent homology of the sublevel set {f <= 0}: top-dimensional cells (closed pixels) give
    the 8 / 26 foreground, vertex values (the vertex construction) give 4 / 6."""
    gudhi = pytest.importorskip("gudhi")
    values = np.where(mask, 0.0, 1.0)
    if connectivity in (8, 26):
        complex_ = gudhi.CubicalComplex(top_dimensional_cells=values)
    else:
        complex_ = gudhi.CubicalComplex(vertices=values)
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=-1)
    numbers = [int(v) for v in complex_.persistent_betti_numbers(0.0, 0.0)][: mask.ndim]
    return tuple(numbers + [0] * (mask.ndim - len(numbers)))


@pytest.mark.parametrize("ndim, connectivity", [(2, 8), (2, 4), (3, 26), (3, 6)])
def test_random_masks_match_cubical_persistent_homology(ndim, connectivity):
    rng = np.random.default_rng(ndim * 100 + connectivity)
    for _ in range(40):
        shape = tuple(rng.integers(3, 24 if ndim == 2 else 12, ndim))
        mask = rng.random(shape) < rng.uniform(0.2, 0.8)
        assert betti_numbers(mask, connectivity) == _gudhi_betti(mask, connectivity), (shape, connectivity)


@pytest.mark.parametrize("ndim", [2, 3])
def test_tiles_are_independent_images_and_cover_the_remainder(ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(15):
        shape = tuple(int(n) for n in rng.integers(5, 16, ndim))
        tile = tuple(int(rng.integers(2, n + 1)) for n in shape)
        mask = rng.random(shape) < 0.5
        tiles = tile_slices(shape, tile)
        covered = np.zeros(shape, int)
        for t in tiles:
            covered[t] += 1
        assert (covered == 1).all()
        expected = np.array([betti_numbers(mask[t]) for t in tiles])
        np.testing.assert_array_equal(tile_betti_numbers(mask, tile), expected)
        np.testing.assert_array_equal(tile_component_counts(mask, tile), expected[:, 0])


def test_a_component_cut_by_a_tile_border_counts_in_both_tiles():
    line = np.zeros((4, 10), bool)
    line[2, :] = True
    np.testing.assert_array_equal(tile_betti_numbers(line, (4, 4)), [[1, 0], [1, 0], [1, 0]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask": np.zeros((2, 3, 4, 5), bool)}, "mask"),
        ({"mask": np.full((4, 4), 2)}, "mask"),
        ({"mask": np.zeros((4, 4), bool), "connectivity": 6}, "connectivity"),
        ({"mask": np.zeros((4, 4, 4), bool), "connectivity": 8}, "connectivity"),
        ({"mask": np.zeros((4, 4), bool), "tile_shape": (5, 2)}, "patch_size"),
        ({"mask": np.zeros((4, 4), bool), "tile_shape": (0, 2)}, "patch_size"),
        ({"mask": np.zeros((4, 4), bool), "tile_shape": (2, 2, 2)}, "patch_size"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tile_betti_numbers(**kwargs)


def test_8_connected_components_match_scipy_labelling():
    """Regression: connected-components-3d 4.1.1 splits some 8-connected 2D components across labels."""
    from scipy import ndimage

    rng = np.random.default_rng(208)
    for _ in range(200):
        mask = rng.random(tuple(rng.integers(3, 24, 2))) < 0.5
        expected = ndimage.label(mask, structure=np.ones((3, 3)))[1]
        assert betti_numbers(mask)[0] == expected
