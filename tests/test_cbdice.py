"""cbDice: the radius-weighted centreline Dice, on hand-made inputs whose values follow from its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss, SoftclDiceLoss
from scipy.ndimage import distance_transform_edt

from conftest import requires_cuda
from contextloss_monai.losses import CBDiceLoss, DiceCECBDiceLoss
from contextloss_monai.topology.distance import distance_to_background


def _logits(binary: torch.Tensor) -> torch.Tensor:
    """Confident two-class logits ``(1, 2, *spatial)`` for a binary map ``(*spatial)``."""
    return torch.stack([20 - 40 * binary, 40 * binary - 20])[None].float()


def _losses(prediction: torch.Tensor, label: torch.Tensor) -> tuple[float, float]:
    """(1 − cbDice, 1 − clDice) of a binary prediction against a binary label, both ``(*spatial)``, 10 iterations."""
    target = label[None, None]
    cbdice = CBDiceLoss(to_onehot_y=True, softmax=True, iters=10)(_logits(prediction), target)
    cldice = SoftclDiceLoss(iter_=10, to_onehot_y=True, softmax=True, include_background=False)(_logits(prediction), target)
    return cbdice.item(), cldice.item()


def test_distance_to_background_is_the_euclidean_distance_and_one_without_background():
    masks = torch.rand(3, 24, 30) > 0.3
    masks[1] = True  # no background: 1 everywhere
    masks[2] = False  # no foreground: 0 everywhere
    dist = distance_to_background(masks)
    assert dist.dtype == torch.float32 and dist.shape == masks.shape
    np.testing.assert_allclose(dist[0].numpy(), distance_transform_edt(masks[0].numpy()), rtol=1e-6)
    assert torch.equal(dist[1], torch.ones(24, 30)) and torch.equal(dist[2], torch.zeros(24, 30))


def test_a_prediction_on_the_centreline_scores_one_and_a_drifted_one_by_its_depth_inside():
    """A 13-pixel bar (radius 7 on its centre row). The same bar shifted 4 rows keeps clDice at its best (each
    centreline lies inside the other mask), but each centreline now lies 3 pixels from the other mask's boundary:
    cbDice = 3/7 (precision and sensitivity alike), the boundary term of its definition."""
    label = torch.zeros(64, 96)
    label[20:33, 10:86] = 1
    assert _losses(label, label)[0] < 1e-6
    cbdice, cldice = _losses(torch.roll(label, 4, dims=0), label)
    assert cldice < 1e-3
    assert cbdice == pytest.approx(1 - 3 / 7, abs=2e-3)
    # a prediction thinner everywhere but centred: cbDice normalises radii per image, so it still agrees
    thin = torch.zeros(64, 96)
    thin[25:28, 10:86] = 1
    assert _losses(thin, label)[0] < 0.05


def test_in_3d_a_gap_in_a_thin_tube_costs_more_than_the_same_gap_in_a_thick_one():
    """The centreline weight 1/R̂² (3D): a 16-voxel gap in a 3-voxel tube weighs more than one in a 9-voxel tube,
    where clDice, counting centreline length, cannot tell the two apart."""
    label = torch.zeros(40, 40, 64)
    label[6:15, 6:15, 4:60] = 1  # thick: 9 x 9
    label[28:31, 28:31, 4:60] = 1  # thin: 3 x 3
    thin_gap, thick_gap = label.clone(), label.clone()
    thin_gap[26:33, 26:33, 24:40] = 0
    thick_gap[4:17, 4:17, 24:40] = 0
    (cb_thin, cl_thin), (cb_thick, cl_thick) = _losses(thin_gap, label), _losses(thick_gap, label)
    assert cl_thin == pytest.approx(cl_thick, abs=1e-6) and cl_thin > 0.05
    assert cb_thin > 1.8 * cb_thick > 0.05


@pytest.mark.parametrize("shape", [(2, 2, 32, 40), (2, 2, 16, 20, 12)])
@pytest.mark.parametrize("fill", ["empty", "full"])
def test_gradients_are_finite_on_empty_and_full_patches(shape, fill):
    torch.manual_seed(0)
    logits = torch.randn(shape, requires_grad=True)
    label = torch.zeros(shape[0], 1, *shape[2:]) if fill == "empty" else torch.ones(shape[0], 1, *shape[2:])
    for loss in (CBDiceLoss(to_onehot_y=True, softmax=True), DiceCECBDiceLoss(to_onehot_y=True, softmax=True)):
        value = loss(logits, label)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
        logits.grad = None
    empty = torch.zeros(shape[0], 1, *shape[2:])
    assert CBDiceLoss(to_onehot_y=True, softmax=True)(_logits(empty[0, 0]).repeat(shape[0], 1, *([1] * (len(shape) - 2))), empty) == 0


def test_the_compound_is_dice_plus_weighted_cross_entropy_plus_cbdice_and_bad_input_is_refused():
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 32, 32)
    label = (torch.rand(2, 1, 32, 32) > 0.7).float()
    compound = DiceCECBDiceLoss(weight=0.5, to_onehot_y=True, softmax=True)(logits, label)
    expected = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, lambda_ce=1.5)(logits, label) + 0.5 * CBDiceLoss(
        to_onehot_y=True, softmax=True)(logits, label)
    assert torch.allclose(compound, expected)
    per_class = CBDiceLoss(to_onehot_y=True, softmax=True, reduction="none")(torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 1, 16, 16)))
    assert per_class.shape == (2, 2)
    with pytest.raises(ValueError, match="include_background"):
        CBDiceLoss(include_background=True)
    with pytest.raises(ValueError, match="smooth"):
        CBDiceLoss(smooth=0)
    with pytest.raises(ValueError, match="iters"):
        CBDiceLoss(iters=0)
    for weight in (-1, float("nan"), float("inf"), "heavy"):  # a NaN weight would train a NaN model
        with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
            DiceCECBDiceLoss(weight=weight)
    with pytest.raises(ValueError, match="needs sigmoid=True"):
        CBDiceLoss(softmax=True)(torch.randn(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="class indices"):
        CBDiceLoss(to_onehot_y=True, softmax=True)(logits, label * 3)  # not a silent zero
    with pytest.raises(ValueError, match="spatial size"):
        CBDiceLoss(to_onehot_y=True, softmax=True)(logits, label[..., :16])


def test_a_binary_sigmoid_model_gets_the_cbdice_of_its_one_channel():
    """One channel with sigmoid (a binary model): the same value and gradient as the two-channel softmax whose
    foreground logit margin is the same (sigmoid(x) = softmax([0, x])[1]); silent in the compound loss."""
    import warnings

    label = torch.zeros(1, 1, 40, 40)
    label[..., 12:22, 4:36] = 1  # a thick bar
    label[..., 30:32, 4:36] = 1  # a thin one
    logits = 6 * label - 3 + torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    one = logits.clone().requires_grad_(True)
    two = torch.cat([torch.zeros_like(logits), logits], dim=1).requires_grad_(True)
    value = CBDiceLoss(sigmoid=True)(one, label)
    reference = CBDiceLoss(to_onehot_y=True, softmax=True)(two, label)
    torch.testing.assert_close(value, reference)
    assert 0.0 < value.item() < 1.0
    value.backward()
    reference.backward()
    torch.testing.assert_close(one.grad, two.grad[:, 1:], rtol=1e-4, atol=1e-7)  # softmax([a, b]) depends on b − a only
    assert one.grad.abs().sum() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DiceCECBDiceLoss(sigmoid=True)(logits, label)


@requires_cuda
def test_cbdice_on_cuda_equals_cpu():
    torch.manual_seed(2)
    for shape in ((2, 2, 48, 48), (1, 2, 24, 24, 16)):
        logits = torch.randn(shape) * 3
        label = (torch.rand(shape[0], 1, *shape[2:]) > 0.6).float()
        label[0, 0, :4] = 1
        loss = CBDiceLoss(to_onehot_y=True, softmax=True)
        cpu, cuda = loss(logits, label), loss(logits.cuda(), label.cuda())
        assert torch.allclose(cpu, cuda.cpu(), atol=1e-4)
        masks = label[:, 0] > 0
        assert torch.allclose(distance_to_background(masks), distance_to_background(masks.cuda()).cpu(), atol=1e-5)
