"""Skeletons: the soft skeleton against MONAI's, its boolean fast path, and the exact skeleton."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import line_with_gap, requires_cuda
from monai.losses.cldice import soft_skel

from contextloss_monai.topology import binary_soft_skeleton, skeletonize, soft_skeleton


def test_soft_skeleton_matches_monai_soft_skel_values_and_gradients():
    torch.manual_seed(0)
    for shape in [(2, 1, 24, 24), (1, 2, 12, 12, 10)]:
        x = torch.rand(shape, requires_grad=True)
        y = x.detach().clone().requires_grad_()
        ours, theirs = soft_skeleton(x, 50), soft_skel(y, 50)
        assert torch.allclose(ours, theirs)
        ours.sum().backward()
        theirs.sum().backward()
        assert torch.allclose(x.grad, y.grad)
    pred, _ = line_with_gap()
    binary = pred.float()
    assert torch.equal(soft_skeleton(binary, 50), soft_skel(binary, 50))


@pytest.mark.parametrize("shape", [(2, 2, 37, 41), (2, 1, 20, 23, 17)])
@pytest.mark.parametrize("density", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("iters", [1, 3, 50])
def test_binary_fast_path_equals_monai_soft_skel(shape, density, iters):
    """Random binary maps, with blobs thick enough to need several erosions and touching the border."""
    gen = torch.Generator().manual_seed(int(density * 10) + iters)
    noise = torch.rand(shape, generator=gen) < density
    pool = torch.nn.functional.max_pool2d if len(shape) == 4 else torch.nn.functional.max_pool3d
    mask = pool(noise.float(), 3, 1, 1) > 0.5 if density < 0.5 else noise
    expected = soft_skel(mask.float(), iters) > 0.5
    assert torch.equal(binary_soft_skeleton(mask, iters), expected)
    assert torch.equal(skeletonize(mask, "soft", iters), expected)


def test_soft_skeleton_of_a_line_is_its_centre_row():
    line = torch.zeros(1, 1, 9, 30, dtype=torch.bool)
    line[..., 3:6, :] = True
    skel = binary_soft_skeleton(line)
    assert skel[0, 0, 4].all() and skel.sum() == 30


def test_exact_skeleton_of_a_ring_is_one_pixel_wide_closed_loop():
    from skimage.measure import euler_number

    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    ring = (r > 10) & (r < 15)
    skel = skeletonize(ring[None, None], method="exact")[0, 0]
    assert skel.sum() < ring.sum() / 3 and (skel <= ring).all()
    assert euler_number(skel, connectivity=2) == 0  # one component with one hole


def test_empty_and_full_maps():
    empty = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    assert not binary_soft_skeleton(empty).any()
    assert not skeletonize(empty.numpy(), method="exact").any()
    full = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    assert torch.equal(binary_soft_skeleton(full), soft_skel(full.float(), 50) > 0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask": torch.zeros(8, 8, dtype=torch.bool)}, "mask"),
        ({"mask": torch.full((1, 1, 8, 8), 0.5)}, "mask"),
        ({"mask": torch.zeros(1, 1, 8, 8), "method": "fast"}, "method"),
        ({"mask": torch.zeros(1, 1, 8, 8), "iters": 0}, "iters"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        skeletonize(**kwargs)


@pytest.mark.parametrize("ndim", [2, 3])
def test_exact_skeleton_on_the_bounding_box_equals_scikit_image_on_the_whole_array(ndim):
    from scipy import ndimage
    from skimage.morphology import skeletonize as sk_skeletonize

    from contextloss_monai.topology import skeletonize_exact

    rng = np.random.default_rng(ndim)
    shape = (40, 50) if ndim == 2 else (20, 22, 18)
    for _ in range(5):
        mask = np.zeros(shape, bool)
        corner = rng.integers(0, 8, ndim)
        inner = tuple(slice(c, c + s // 2) for c, s in zip(corner, shape))
        mask[inner] = ndimage.binary_dilation(rng.random(mask[inner].shape) < 0.05, iterations=2)
        expected = sk_skeletonize(mask)
        result = skeletonize_exact(mask)
        np.testing.assert_array_equal(result, expected)
        assert skeletonize_exact(mask.copy()) is result  # cached by content
        assert not result.flags.writeable


@requires_cuda
@pytest.mark.parametrize("shape", [(4, 1, 96, 80), (2, 2, 24, 20, 12)])
def test_cuda_graph_skeleton_equals_eager_and_cpu(shape, monkeypatch):
    """The replayed CUDA graph gives the eager result for new contents of a captured shape (the input is copied
    into the graph's buffer each call), for a second shape, and the CPU's result."""
    from contextloss_monai.topology import skeleton as skeleton_module

    generator = torch.Generator().manual_seed(3)
    for density in (0.3, 0.6, 0.0, 0.8):  # the same shape with new contents, an empty map included
        mask = torch.rand(shape, generator=generator) < density
        graphed = binary_soft_skeleton(mask.cuda())
        monkeypatch.setattr(skeleton_module, "USE_CUDA_GRAPHS", False)
        eager = binary_soft_skeleton(mask.cuda())
        monkeypatch.setattr(skeleton_module, "USE_CUDA_GRAPHS", True)
        assert graphed.is_cuda and torch.equal(graphed, eager)
        assert torch.equal(graphed.cpu(), binary_soft_skeleton(mask))
    assert any(key[0] == shape for key in skeleton_module._GRAPHS)  # captured, not fallen back silently
    assert all(entry is not None for key, entry in skeleton_module._GRAPHS.items() if key[0] == shape)
