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


@pytest.fixture(params=["bool", "packed"])
def skeleton_words(request, monkeypatch):
    """Run the binary skeleton on the bool map or on bit-packed words, whatever the size."""
    from contextloss_monai.topology import skeleton as skeleton_module

    minimum = 1 << 62 if request.param == "bool" else 0
    monkeypatch.setattr(skeleton_module, "PACKED_MIN_PIXELS", {2: minimum, 3: minimum})
    return request.param


@pytest.mark.parametrize("shape", [(2, 2, 37, 41), (2, 1, 20, 23, 17), (1, 2, 9, 130), (1, 1, 6, 7, 64)])
@pytest.mark.parametrize("density", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("iters", [1, 3, 50])
def test_binary_fast_path_equals_monai_soft_skel(shape, density, iters, skeleton_words):
    """Random binary maps, with blobs thick enough to need several erosions and touching the border; rows of
    one, two and three 64-pixel words."""
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


@pytest.mark.parametrize("shape", [(3, 2, 5, 1), (2, 3, 7), (1, 4, 64), (2, 2, 65), (1, 3, 200), (2, 4, 6, 129)])
def test_packed_morphology_is_the_bool_morphology(shape):
    """Packing round-trips; erosion and dilation on packed words are erode_cross and dilate_box of the bool map
    (outside the image foreground for the erosion, background for the dilation), padding bits left 0; rows
    shorter than a byte, of exactly one word, and spanning several words."""
    from contextloss_monai.topology.morphology import dilate_box, erode_cross
    from contextloss_monai.topology.packed import dilate_box_packed, erode_cross_packed, pack_bits, row_bits, unpack_bits

    width, generator = shape[-1], torch.Generator().manual_seed(len(shape) * 100 + shape[-1])
    row = row_bits(width)
    for density in (0.2, 0.7, 0.97, 1.0):
        mask = torch.rand(shape, generator=generator) < density
        words = pack_bits(mask)
        assert words.dtype == torch.int64 and words.shape == (*shape[:-1], -(-width // 64))
        assert torch.equal(unpack_bits(words, width), mask)
        assert torch.equal(words & ~row, torch.zeros_like(words))  # no padding bit set
        for axes_packed in [range(0, len(shape) - 1), range(1, len(shape) - 1)]:
            axes = [*axes_packed, len(shape) - 1]
            eroded, dilated = erode_cross_packed(words, row, axes_packed), dilate_box_packed(words, row, axes_packed)
            assert torch.equal(unpack_bits(eroded, width), erode_cross(mask, axes))
            assert torch.equal(unpack_bits(dilated, width), dilate_box(mask, axes))
            assert torch.equal(eroded & ~row, torch.zeros_like(words)) and torch.equal(dilated & ~row, torch.zeros_like(words))
    assert pack_bits(torch.ones(1, 64, dtype=torch.bool)).item() == -1  # bit 63 is the sign bit: all 64 set
    assert pack_bits(torch.tensor([[False] * 63 + [True]])).item() == -(1 << 63)


@requires_cuda
@pytest.mark.parametrize("shape", [(4, 1, 96, 80), (2, 2, 24, 20, 12)])
def test_cuda_graph_skeleton_equals_eager_and_cpu(shape, monkeypatch, skeleton_words):
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


def test_skeleton_benchmark_times_both_paths_on_the_loss_maps(capsys):
    """contextloss bench-skeleton: both paths give identical skeletons on ContextLoss's maps (exit 0), the default
    column follows PACKED_MIN_PIXELS (a small 2D batch on the bool map, a 3D one packed), and the module's
    threshold is restored afterwards."""
    from contextloss_monai.benchmarks import skeleton as bench
    from contextloss_monai.topology import skeleton as skeleton_module

    before = dict(skeleton_module.PACKED_MIN_PIXELS)
    assert bench.main(["--repeats", "5", "--shapes", "2d-small", "3d-small", "--markdown"]) == 0
    rows = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| 4x1x")]
    assert [[cell.strip() for cell in row][::6] for row in rows] == [["4x1x128x128", "yes"], ["4x1x32x32x32", "yes"]]
    assert [row[2].strip() for row in rows] == ["bool", "packed"]
    assert all(float(row[3]) > 0 and float(row[4]) > 0 for row in rows)
    assert skeleton_module.PACKED_MIN_PIXELS == before
    maps = bench.skeleton_maps((1, 2, 40, 40))
    assert maps.shape == (2, 1, 40, 40) and maps.dtype == torch.bool and maps[0].any() and maps[1].any()
