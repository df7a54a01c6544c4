"""Topological post-processing (paper Alg. 2): keep fine-tuned components that overlap the pretrained ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import requires_cuda
from monai.data import MetaTensor

from contextloss_monai.transforms import TopologicalPostProcess, TopologicalPostProcessd


def scene():
    """Pretrained: a line with a gap (two pieces). Fine-tuned: the gap bridged, plus a new isolated blob."""
    pretrained = np.zeros((1, 16, 32), np.float32)
    pretrained[0, 7:10, 2:14] = 1
    pretrained[0, 7:10, 18:30] = 1
    finetuned = pretrained.copy()
    finetuned[0, 7:10, 14:18] = 1  # the bridge
    finetuned[0, 1:4, 25:28] = 1  # a new blob
    return finetuned, pretrained


def test_keeps_the_bridge_drops_the_new_blob_and_adds_nothing():
    finetuned, pretrained = scene()
    out = TopologicalPostProcess()(finetuned, pretrained)
    expected = finetuned.copy()
    expected[0, 1:4, 25:28] = 0
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == finetuned.dtype and ((out == 1) <= (finetuned == 1)).all()


def test_a_pretrained_component_missing_in_finetuned_is_not_added():
    finetuned, pretrained = scene()
    pretrained[0, 12:15, 5:8] = 1  # only in the pretrained prediction
    out = TopologicalPostProcess()(torch.from_numpy(finetuned), torch.from_numpy(pretrained))
    assert isinstance(out, torch.Tensor) and out[0, 12:15, 5:8].sum() == 0


def test_connectivity_decides_whether_a_diagonal_neighbour_is_kept():
    pretrained = np.zeros((1, 8, 8), np.uint8)
    pretrained[0, 2, 2] = 1
    finetuned = pretrained.copy()
    finetuned[0, 3, 3] = 1  # touches the pretrained pixel only at a corner
    assert TopologicalPostProcess()(finetuned, pretrained)[0, 3, 3] == 1
    assert TopologicalPostProcess(connectivity=4)(finetuned, pretrained)[0, 3, 3] == 0


def test_per_channel_3d_and_batched_layouts():
    rng = np.random.default_rng(0)
    pre = rng.random((2, 3, 10, 10, 6)) < 0.05
    fine = rng.random((2, 3, 10, 10, 6)) < 0.3
    batched = TopologicalPostProcess(spatial_dims=3)(fine, pre)
    for b in range(2):
        per_sample = TopologicalPostProcess()(fine[b], pre[b])
        np.testing.assert_array_equal(batched[b], per_sample)
        for c in range(3):
            np.testing.assert_array_equal(per_sample[c], TopologicalPostProcess()(fine[b, c : c + 1], pre[b, c : c + 1])[0])
    assert (batched <= fine).all()


def test_dictionary_version_and_meta_tensor():
    finetuned, pretrained = scene()
    data = {"pred": MetaTensor(torch.from_numpy(finetuned), affine=torch.eye(4) * 2), "pred_pretrained": pretrained}
    out = TopologicalPostProcessd(keys="pred", pretrained_key="pred_pretrained")(data)
    assert isinstance(out["pred"], MetaTensor) and out["pred"][0, 1:4, 25:28].sum() == 0
    assert torch.equal(out["pred"].affine, data["pred"].affine)
    with pytest.raises(KeyError, match="pretrained_key"):
        TopologicalPostProcessd(keys="pred", pretrained_key="missing")(data)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: TopologicalPostProcess()(np.zeros((1, 8, 8)), np.zeros((1, 8, 9))), "same shape"),
        (lambda: TopologicalPostProcess()(np.zeros((8,)), np.zeros((8,))), "channel-first"),
        (lambda: TopologicalPostProcess()(np.full((1, 8, 8), 0.5), np.zeros((1, 8, 8))), "finetuned"),
        (lambda: TopologicalPostProcess(connectivity=5), "connectivity"),
        (lambda: TopologicalPostProcess(connectivity=6)(np.zeros((1, 8, 8)), np.zeros((1, 8, 8))), "connectivity"),
        (lambda: TopologicalPostProcess(spatial_dims=4), "spatial_dims"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bfloat16_and_batches_follow_one_rule():
    """bfloat16 input works like float32; a batch (B, C, H, W) is read with spatial_dims=2 (without it a 4D
    input is channel-first 3D, as MONAI's post transforms read it), and a batch of 0 gives an empty batch."""
    from contextloss_monai.metrics import compute_ags, compute_betti_error, compute_cldice, compute_e0_gt

    fine = torch.zeros(2, 1, 16, 16)
    fine[:, :, 4, 2:14] = 1
    fine[:, :, 12, 12] = 1  # a blob the pretrained model does not have
    pre = torch.zeros_like(fine)
    pre[:, :, 4, 2:14] = 1
    post = TopologicalPostProcess(spatial_dims=2)
    expected = post(fine, pre)
    assert expected[:, :, 12, 12].sum() == 0 and expected.sum() == 24
    cleaned = post(fine.to(torch.bfloat16), pre.to(torch.bfloat16))
    assert cleaned.dtype == torch.bfloat16 and torch.equal(cleaned.float(), expected)
    for b in range(2):
        assert torch.equal(TopologicalPostProcess()(fine[b], pre[b]), expected[b])
    empty = post(fine[:0], pre[:0])
    assert empty.shape == (0, 1, 16, 16)
    for compute in (compute_betti_error, compute_e0_gt, compute_ags, compute_cldice):
        torch.testing.assert_close(compute(fine.to(torch.bfloat16), pre.to(torch.bfloat16)), compute(fine, pre), equal_nan=True)


@requires_cuda
def test_cuda_tensors_stay_on_their_device_with_the_cpu_result():
    finetuned, pretrained = scene()
    expected = TopologicalPostProcess()(finetuned, pretrained)
    out = TopologicalPostProcess()(torch.as_tensor(finetuned).cuda(), torch.as_tensor(pretrained).cuda())
    assert out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), expected)
