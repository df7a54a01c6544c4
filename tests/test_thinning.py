"""Lee's 3D thinning compiled with Numba: voxel for voxel scikit-image's ``skeletonize`` of a 3D array."""

from __future__ import annotations

import numpy as np
import pytest
import skimage
from packaging.version import Version
from scipy import ndimage
from skimage.morphology import skeletonize as sk_skeletonize

from contextloss_monai.topology.thinning import thin_3d

SAME_ALGORITHM = pytest.mark.skipif(
    Version(skimage.__version__) >= Version("0.27"),
    reason="thin_3d reproduces scikit-image 0.16-0.26's 3D thinning; a newer scikit-image may re-check differently",
)


def random_volumes(seed: int, count: int):
    """Noise, dilated noise and thin sheets with holes, of random small shapes (some a single plane thick)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        shape = tuple(int(n) for n in rng.integers(1, 16, 3))
        kind = i % 3
        if kind == 0:
            yield rng.random(shape) < rng.uniform(0.2, 0.9)
        elif kind == 1:
            yield ndimage.binary_dilation(rng.random(shape) < rng.uniform(0.03, 0.3), iterations=int(rng.integers(1, 3)))
        else:
            volume = np.zeros(shape, bool)
            volume[:, :, shape[2] // 2 : shape[2] // 2 + int(rng.integers(1, 4))] = True  # a sheet across the volume
            volume &= rng.random(shape) > 0.1  # with holes
            yield volume


@SAME_ALGORITHM
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thin_3d_equals_scikit_image(seed):
    for volume in random_volumes(seed, 60):
        np.testing.assert_array_equal(thin_3d(volume), sk_skeletonize(volume))


@SAME_ALGORITHM
def test_thin_3d_equals_scikit_image_on_solid_and_degenerate_shapes():
    # solid boxes thin from six sides; one-plane arrays use four directions; a 2x1x2 square vanishes in
    # scikit-image (its re-check tests simplicity only) — all reproduced
    shapes = [(5, 5, 5), (2, 6, 6), (1, 3, 3), (3, 3, 1), (2, 1, 2), (1, 1, 4), (9, 4, 7)]
    for shape in shapes:
        volume = np.ones(shape, bool)
        np.testing.assert_array_equal(thin_3d(volume), sk_skeletonize(volume), err_msg=str(shape))
    torus = np.zeros((12, 12, 5), bool)
    torus[2:10, 2:10, 1:4] = True
    torus[5:7, 5:7, :] = False
    np.testing.assert_array_equal(thin_3d(torus), sk_skeletonize(torus))


def test_thin_3d_keeps_a_subset_and_leaves_its_input_alone():
    volume = ndimage.binary_dilation(np.random.default_rng(3).random((20, 20, 20)) < 0.05, iterations=2)
    before = volume.copy()
    skeleton = thin_3d(volume)
    assert skeleton.dtype == bool and skeleton.shape == volume.shape
    assert not (skeleton & ~volume).any() and 0 < skeleton.sum() < volume.sum()
    np.testing.assert_array_equal(volume, before)
    assert not thin_3d(np.zeros((4, 5, 6), bool)).any()


def test_thin_3d_rejects_other_dimensions_and_non_binary_values():
    with pytest.raises(ValueError, match="mask must be a 3D array"):
        thin_3d(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="mask must be binary"):
        thin_3d(np.full((4, 4, 4), 2))
