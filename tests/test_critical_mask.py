"""The critical pixel mask on hand-made errors with known answers (docs/package.md, "Our readings")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import line_with_gap, parallel_lines_with_bridge, requires_cuda, tube_with_gap, tubes_with_bridge

from contextloss_monai.topology import critical_pixel_mask, skeletonize


def test_gap_mask_is_the_full_cross_section_of_the_gap(skeleton_method):
    pred, label = line_with_gap((18, 22))
    mask = critical_pixel_mask(pred, label, skeleton=skeleton_method)
    expected = label.clone()
    expected[..., :18] = False
    expected[..., 22:] = False
    assert mask.dtype == torch.bool and mask.shape == label.shape
    assert torch.equal(mask, expected)


def test_thin_mask_is_the_error_skeleton_only(skeleton_method):
    pred, label = line_with_gap((18, 22))
    mask = critical_pixel_mask(pred, label, skeleton=skeleton_method, context=False)
    expected = torch.zeros_like(label)
    expected[..., 4, 18:22] = True  # the label's centre line inside the gap
    assert torch.equal(mask, expected)


def test_false_bridge_mask_lies_in_the_prediction_and_covers_the_bridge(skeleton_method):
    pred, label = parallel_lines_with_bridge()
    mask = critical_pixel_mask(pred, label, skeleton=skeleton_method)
    assert not (mask & ~pred).any(), "the false-positive context is cropped to the prediction"
    assert not (mask & label).any(), "the correctly predicted lines are not critical"
    # rows 7..11 are bridge pixels whose nearest skeleton is the bridge's own; rows 6 and 12 touch the
    # lines, where the error and the correct skeleton are equally near (d_E = d_C is not critical)
    assert mask[..., 7:12, 18:22].all()
    assert mask.sum() <= (pred & ~label).sum()


def test_perfect_prediction_has_an_empty_mask(skeleton_method):
    _, label = parallel_lines_with_bridge()
    assert not critical_pixel_mask(label, label, skeleton=skeleton_method).any()


def test_completely_missed_component_is_the_mask(skeleton_method):
    _, label = parallel_lines_with_bridge()
    pred = label.clone()
    pred[..., 13:16, :] = False  # the second line is not predicted at all
    mask = critical_pixel_mask(pred, label, skeleton=skeleton_method)
    assert torch.equal(mask, label & ~pred)


def test_empty_label_and_prediction_give_an_empty_mask():
    empty = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    assert not critical_pixel_mask(empty, empty).any()


def test_false_positive_blob_on_empty_label_is_the_mask():
    label = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    pred = label.clone()
    pred[..., 4:9, 4:9] = True
    assert torch.equal(critical_pixel_mask(pred, label), pred)


def test_3d_tube_gap(skeleton_method):
    pred, label = tube_with_gap()
    mask = critical_pixel_mask(pred, label, skeleton=skeleton_method)
    expected = label & ~pred
    assert torch.equal(mask, expected)


def test_3d_false_bridge_between_tubes(skeleton_method):
    pred, label = tubes_with_bridge()
    mask = critical_pixel_mask(pred, label, skeleton=skeleton_method)
    assert not (mask & ~pred).any() and not (mask & label).any()
    assert mask[..., 4:7, 7:14, 18:22].all(), "the bridge between the layers touching the tubes is critical"


def _brute_force_mask(error: np.ndarray, correct: np.ndarray, region: np.ndarray, spacing) -> np.ndarray:
    """d_E < d_C ∧ region by comparing every pair of pixels, with anisotropic spacing."""
    coords = np.argwhere(np.ones_like(region))
    scale = np.asarray(spacing, float)

    def nearest(points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.full(len(coords), np.inf)
        diff = (coords[:, None, :] - points[None, :, :]) * scale
        return np.sqrt((diff**2).sum(-1)).min(1)

    closer = nearest(np.argwhere(error)) < nearest(np.argwhere(correct))
    return closer.reshape(region.shape) & region


def test_anisotropic_spacing_moves_the_context_boundary():
    # a plus sign; the prediction misses the horizontal bar: near the crossing, a pixel of the bar is
    # 1 row from the error skeleton and 2 columns from the correct one, so stretching rows by 3 hands it over
    label = torch.zeros(1, 1, 21, 21, dtype=torch.bool)
    label[..., 9:12, :] = True
    label[..., :, 9:12] = True
    pred = torch.zeros_like(label)
    pred[..., :, 9:12] = True
    skel = skeletonize(label, method="exact")[0, 0].numpy()
    p, y = pred[0, 0].numpy(), label[0, 0].numpy()
    masks = {}
    for spacing in [(1.0, 1.0), (3.0, 1.0)]:
        masks[spacing] = critical_pixel_mask(pred, label, skeleton="exact", spacing=spacing)[0, 0].numpy()
        expected = _brute_force_mask(skel & ~p, skel & p, y, spacing)
        np.testing.assert_array_equal(masks[spacing], expected)
    assert masks[(1.0, 1.0)][9, 8] and not masks[(3.0, 1.0)][9, 8]
    assert masks[(3.0, 1.0)].sum() < masks[(1.0, 1.0)].sum()


def test_per_sample_and_channel():
    pred_gap, label_line = line_with_gap()
    batch_pred = torch.zeros(2, 2, 9, 40, dtype=torch.bool)
    batch_label = torch.zeros_like(batch_pred)
    batch_label[1, 0] = label_line[0, 0]
    batch_pred[1, 0] = pred_gap[0, 0]
    batch_label[0, 1] = batch_pred[0, 1] = label_line[0, 0]  # perfect in another sample and channel
    mask = critical_pixel_mask(batch_pred, batch_label)
    assert mask[1, 0].sum() == 12 and not mask[0].any() and not mask[1, 1].any()


def test_numpy_input_gives_numpy_output():
    pred, label = line_with_gap()
    mask = critical_pixel_mask(pred.numpy().astype(np.uint8), label.numpy().astype(np.float32))
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.sum() == 12


def test_mask_needs_no_gradient():
    pred, label = line_with_gap()
    soft_pred = pred.float().requires_grad_()
    mask = critical_pixel_mask(soft_pred, label.float())
    assert not mask.requires_grad


@requires_cuda
def test_cuda_mask_matches_cpu():
    pred, label = tube_with_gap()
    cpu = critical_pixel_mask(pred, label, spacing=(1.0, 2.0, 0.5))
    gpu = critical_pixel_mask(pred.cuda(), label.cuda(), spacing=(1.0, 2.0, 0.5))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(pred=torch.zeros(1, 1, 8, 8), label=torch.zeros(1, 1, 8, 9)), "same shape"),
        (dict(pred=torch.zeros(8, 8), label=torch.zeros(8, 8)), "pred must have"),
        (dict(pred=torch.zeros(1, 1, 8, 8), label=torch.full((1, 1, 8, 8), 0.5)), "label must be binary"),
        (dict(pred=torch.full((1, 1, 8, 8), 2.0), label=torch.zeros(1, 1, 8, 8)), "pred must be binary"),
        (dict(pred=torch.zeros(1, 1, 8, 8), label=torch.zeros(1, 1, 8, 8), skeleton="fast"), "skeleton|method"),
        (dict(pred=torch.zeros(1, 1, 8, 8), label=torch.zeros(1, 1, 8, 8), iters=0), "iters"),
        (dict(pred=torch.zeros(1, 1, 8, 8), label=torch.zeros(1, 1, 8, 8), spacing=(1.0, 0.0)), "spacing"),
        (dict(pred=torch.zeros(1, 1, 8, 8), label=torch.zeros(1, 1, 8, 8), spacing=(1.0, 1.0, 1.0)), "spacing"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, match):
    pred, label = kwargs.pop("pred"), kwargs.pop("label")
    with pytest.raises(ValueError, match=match):
        critical_pixel_mask(pred, label, **kwargs)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("spacing", [None, (1.0, 2.5, 0.7)])
def test_cropped_voronoi_equals_the_whole_image_computation(ndim, spacing):
    """closer_to_error works in small boxes around each error piece; it must equal the plain definition."""
    from scipy import ndimage

    from contextloss_monai.topology import closer_to_error

    spacing = None if spacing is None else spacing[:ndim]
    rng = np.random.default_rng(ndim)
    shape = (64, 64) if ndim == 2 else (24, 24, 20)
    for trial in range(12):
        region = ndimage.binary_dilation(rng.random(shape) < 0.02, iterations=int(rng.integers(1, 4)))
        skeleton = region & (rng.random(shape) < 0.5)
        error = skeleton & (rng.random(shape) < (0.02 if trial % 2 else 0.3))
        correct = skeleton & ~error
        if not error.any():
            continue
        sampling = spacing or (1.0,) * ndim
        d_error = ndimage.distance_transform_edt(~error, sampling=sampling)
        d_correct = ndimage.distance_transform_edt(~correct, sampling=sampling) if correct.any() else np.inf
        expected = (d_error < d_correct) & region
        np.testing.assert_array_equal(closer_to_error(error, correct, region, spacing), expected)


def _scipy_squared_distances(stack: torch.Tensor, spacing) -> torch.Tensor:
    """An exact transform on the host per image of a stack, for :func:`batched_error_context` (the GPU uses
    cuCIM); values of an image without ``True`` pixels are arbitrary, as cuCIM's may be."""
    from scipy import ndimage

    out = [ndimage.distance_transform_edt(~a, sampling=spacing) ** 2 if a.any() else np.full(a.shape, 7.0) for a in stack.numpy()]
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("spacing", [None, (1.0, 2.5, 0.7)])
def test_batched_error_context_equals_the_per_image_loop(ndim, spacing):
    """The GPU path decides the whole batch in one stacked transform; on the host with SciPy it must give
    the per-(sample, channel) result, including images without error, without correct skeleton, and a
    batch where no image has a correct skeleton."""
    from scipy import ndimage

    from contextloss_monai.topology.critical_mask import batched_error_context, error_context

    spacing = None if spacing is None else spacing[:ndim]
    rng = np.random.default_rng(10 + ndim)
    shape = (3, 2) + ((48, 40) if ndim == 2 else (20, 18, 16))
    region = np.stack([ndimage.binary_dilation(rng.random(shape[2:]) < 0.02, iterations=2) for _ in range(6)]).reshape(shape)
    skeleton = region & (rng.random(shape) < 0.5)
    error = skeleton & (rng.random(shape) < 0.1)
    correct = skeleton & ~error
    error[0, 1] = False  # no error: empty mask
    correct[1, 0] = False  # no correct skeleton: the whole region
    tensors = [torch.from_numpy(a) for a in (error, correct, region)]
    expected = error_context(*tensors, spacing)
    assert expected[1, 0].equal(tensors[2][1, 0]) and not expected[0, 1].any() and expected.any()
    torch.testing.assert_close(batched_error_context(*tensors, spacing, _scipy_squared_distances), expected)
    no_correct = [tensors[0], torch.zeros_like(tensors[1]), tensors[2]]
    torch.testing.assert_close(batched_error_context(*no_correct, spacing, _scipy_squared_distances), error_context(*no_correct, spacing))


@requires_cuda
@pytest.mark.parametrize("skeleton", ["soft", "exact"])
@pytest.mark.parametrize("shape, spacing", [((40, 36, 20), (1.0, 1.0, 2.0)), ((40, 36, 20), None), ((96, 80), None), ((96, 80), 0.5)])
def test_cuda_batch_mask_matches_cpu(skeleton, shape, spacing):
    """The GPU path (cuCIM when installed: anisotropic spacing through cuCIM, isotropic applied afterwards) gives
    the CPU's mask, also for an image without error (its prediction is its label) and one with an empty label."""
    rng = np.random.default_rng(0)
    from scipy import ndimage

    label = torch.from_numpy(np.stack([ndimage.binary_dilation(rng.random(shape) < 0.01, iterations=2) for _ in range(4)]))
    pred = label & torch.from_numpy(rng.random(label.shape) > 0.05)
    pred[1] = label[1]
    label[2] = False
    label, pred = label.reshape(2, 2, *shape), pred.reshape(2, 2, *shape)
    cpu = critical_pixel_mask(pred, label, skeleton=skeleton, spacing=spacing)
    gpu = critical_pixel_mask(pred.cuda(), label.cuda(), skeleton=skeleton, spacing=spacing)
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu) and cpu.any()
