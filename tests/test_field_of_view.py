"""Field-of-view masks honoured end to end: the losses leave the outside out (zero gradient, unchanged value),
the transforms give every item a mask and restrict predictions, the metrics ignore what lies outside."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.metrics import DiceMetric

from contextloss_monai.bundle import build_loss
from contextloss_monai.losses import OUTSIDE_LABEL, FieldOfViewLoss
from contextloss_monai.method import LOSS_NAMES
from contextloss_monai.metrics import AGSMetric, BettiErrorMetric, ClDiceMetric, E0GtMetric
from contextloss_monai.transforms import (
    ApplyFieldOfView,
    ApplyFieldOfViewd,
    EnsureFieldOfViewd,
    IntensityFieldOfView,
    MarkOutsideFieldOfView,
    MarkOutsideFieldOfViewd,
    SkeletonTube,
)


def _line_label(size: int = 64) -> torch.Tensor:
    """A cross of two thin lines, class indices (1, 1, size, size)."""
    label = torch.zeros(1, 1, size, size)
    label[..., 8 : size - 8, size // 3] = 1
    label[..., size // 2, 4 : size - 4] = 1
    return label


def _with_gap(label: torch.Tensor) -> torch.Tensor:
    """The label with a two-pixel gap in its vertical line, inside the tile (16:32, 16:32) of the left half."""
    pred = label.clone()
    pred[..., 18:20, label.shape[-1] // 3] = 0
    return pred


def _with_tube(name: str, label: torch.Tensor) -> torch.Tensor:
    """The target a loss gets in the bundles: for Skeleton Recall the label's tube stacked on it (the field-of-view
    mark left out of the tube, as ``target_transforms`` computes it), for the others the label."""
    if name != "skeleton_recall":
        return label
    tube = torch.stack([SkeletonTube(ignore_value=OUTSIDE_LABEL)(item) for item in label])
    return torch.cat([label, tube], dim=1)


def _left_half(size: int = 64, batch: int = 1) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[..., : size // 2] = 1
    return mask


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("stacked", [False, True])
def test_loss_gradient_is_zero_outside_and_value_ignores_the_outside(name, stacked):
    torch.manual_seed(0)
    label = _line_label().repeat(2, 1, 1, 1)
    inside = _left_half(batch=2) > 0
    marked = _with_tube(name, torch.where(inside, label, torch.full_like(label, OUTSIDE_LABEL)))
    shape = (2, 3, 2, 64, 64) if stacked else (2, 2, 64, 64)
    logits = torch.randn(shape, requires_grad=True)
    loss = build_loss(name, gamma=0.5, deep_supervision=stacked)
    value = loss(logits, marked)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    outside = ~inside[:, None] if stacked else ~inside
    assert (logits.grad.masked_select(outside.expand_as(logits.grad)) == 0).all()
    assert logits.grad.masked_select((~outside).expand_as(logits.grad)).abs().sum() > 0
    # anything at all predicted outside: the same loss, to the last bit
    other = logits.detach().clone()
    other.masked_scatter_(outside.expand_as(other), torch.randn(shape).mul(30).masked_select(outside.expand_as(other)))
    assert torch.equal(loss(other, marked), value.detach())


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_without_outside_pixels_is_bitwise_the_wrapped_loss(name):
    torch.manual_seed(1)
    label = _with_tube(name, (torch.rand(2, 1, 32, 32) > 0.8).float())
    logits = torch.randn(2, 2, 32, 32, requires_grad=True)
    wrapped = build_loss(name, gamma=0.3, deep_supervision=False)
    value = wrapped(logits, label)
    (grad,) = torch.autograd.grad(value, logits)
    plain_logits = logits.detach().clone().requires_grad_(True)
    plain = wrapped.loss(plain_logits, label)
    (plain_grad,) = torch.autograd.grad(plain, plain_logits)
    assert torch.equal(value, plain) and torch.equal(grad, plain_grad)


def test_loss_on_an_all_outside_patch_is_zero_and_finite():
    label = torch.full((1, 1, 16, 16), float(OUTSIDE_LABEL))
    logits = torch.randn(1, 2, 16, 16, requires_grad=True)
    for name in LOSS_NAMES:
        value = build_loss(name, deep_supervision=False)(logits, _with_tube(name, label))
        value.backward()
        assert torch.isfinite(value) and value.abs() < 1e-4, name
        assert (logits.grad == 0).all(), name
        logits.grad = None


def test_single_sigmoid_channel_gets_certain_background():
    from monai.losses import DiceLoss

    loss = FieldOfViewLoss(DiceLoss(sigmoid=True))
    label = torch.full((1, 1, 8, 8), float(OUTSIDE_LABEL))
    label[..., :4] = 1
    logits = torch.full((1, 1, 8, 8), 20.0, requires_grad=True)
    # inside: all foreground and predicted so; outside: a certain background, so a near-perfect Dice
    assert loss(logits, label) < 1e-3


def test_ensure_field_of_view_keeps_derives_or_fills():
    image = MetaTensor(torch.full((3, 10, 10), 100.0), meta={"filename_or_obj": "photo.png"})
    image[:, :, :2] = 0.0  # dark corner columns
    own = torch.zeros(1, 10, 10)
    own[..., 5:] = 1
    assert torch.equal(EnsureFieldOfViewd()({"image": image, "mask": own})["mask"], own)
    filled = EnsureFieldOfViewd()({"image": image})["mask"]
    assert filled.shape == (1, 10, 10) and (filled == 1).all()
    derived = EnsureFieldOfViewd(threshold=10)({"image": image})["mask"]
    assert derived[..., :2].sum() == 0 and (derived[..., 2:] == 1).all()
    shrunk = IntensityFieldOfView(threshold=10, margin=2)(image)
    assert shrunk[0, 2:-2, 4:-2].all() and shrunk[0, :, :4].sum() == 0 and shrunk[0, :2].sum() == 0
    overridden = EnsureFieldOfViewd(threshold=10, override=True)({"image": image, "mask": own})["mask"]
    assert torch.equal(overridden, derived)
    with pytest.raises(ValueError, match=r"mask must be a one-channel field-of-view mask for image of shape \(3, 10, 10\), shape \(1, 10, 10\), got \(1, 9, 10\)"):
        EnsureFieldOfViewd()({"image": image, "mask": torch.ones(1, 9, 10)})
    with pytest.raises(ValueError, match="margin"):
        IntensityFieldOfView(10, margin=-1)
    with pytest.raises(ValueError, match="fov_threshold"):
        EnsureFieldOfViewd(override=True)


def test_apply_and_mark_outside_keep_the_image_and_its_metadata():
    pred = MetaTensor(torch.ones(1, 6, 6), meta={"filename_or_obj": "case_7.nii.gz"})
    mask = MetaTensor(torch.zeros(1, 6, 6), meta={"filename_or_obj": "mask_7.nii.gz"})
    mask[..., :3] = 1
    out = ApplyFieldOfView()(pred, mask)
    assert out.meta["filename_or_obj"] == "case_7.nii.gz"  # the saved prediction keeps its own name
    assert out[..., 3:].sum() == 0 and (out[..., :3] == 1).all()
    as_array = ApplyFieldOfView()(np.ones((1, 6, 6), np.uint8), mask.numpy())
    assert isinstance(as_array, np.ndarray) and as_array.dtype == np.uint8 and as_array[..., 3:].sum() == 0
    marked = MarkOutsideFieldOfView()(torch.zeros(1, 6, 6), mask)
    assert set(marked[..., 3:].unique().tolist()) == {OUTSIDE_LABEL} and marked[..., :3].sum() == 0
    item = MarkOutsideFieldOfViewd()({"label": torch.zeros(1, 6, 6), "mask": mask})
    assert "mask" not in item and (item["label"][..., 3:] == OUTSIDE_LABEL).all()
    restricted = ApplyFieldOfViewd(["pred", "label"])({"pred": pred, "label": torch.ones(1, 6, 6), "mask": mask})
    assert restricted["label"][..., 3:].sum() == 0 and restricted["pred"][..., 3:].sum() == 0
    with pytest.raises(ValueError, match="mask must be"):
        ApplyFieldOfView()(pred, torch.ones(1, 6, 5))


def _one_hot(indices: torch.Tensor) -> torch.Tensor:
    return torch.cat([1 - indices, indices], dim=1)


def test_metrics_do_not_change_when_everything_outside_is_wrong():
    torch.manual_seed(2)
    label = _line_label()
    mask = _left_half()
    pred = _with_gap(label)  # one gap inside: something to measure
    wrong = pred.clone()
    right = mask[..., :1, :, :] > 0
    noise = (torch.rand_like(pred) > 0.5).float()
    wrong = torch.where(right, wrong, noise)  # outside: noise in the prediction ...
    wrong_label = torch.where(right, label, 1 - label)  # ... and an inverted label
    metrics = [BettiErrorMetric(patch_size=16, error="e"), E0GtMetric(patch_size=16), AGSMetric(patch_size=16, num_workers=1),
               ClDiceMetric(patch_size=16, num_workers=1), BettiErrorMetric(patch_size=16, error="e0")]
    for metric in metrics:
        reference = metric(_one_hot(pred), _one_hot(label), mask=mask)
        changed = metric(_one_hot(wrong), _one_hot(wrong_label), mask=mask)
        assert torch.equal(reference, changed), type(metric).__name__
        assert not torch.equal(metric(_one_hot(wrong), _one_hot(wrong_label)), changed), type(metric).__name__
    # Dice: the bundles set prediction and label to background outside before MONAI's DiceMetric
    dice = DiceMetric(include_background=False)
    restrict = ApplyFieldOfView()
    values = [dice(_one_hot(restrict(p[0], mask[0])[None]), _one_hot(restrict(y[0], mask[0])[None]))
              for p, y in ((pred, label), (wrong, wrong_label))]
    assert torch.equal(values[0], values[1])


def test_tiles_entirely_outside_are_left_out_of_the_mean():
    label = _line_label()
    pred = _with_gap(label)  # one split, in one of the 8 tiles of the left half
    whole = BettiErrorMetric(patch_size=16, error="e0", include_background=False)
    e0_whole = whole(_one_hot(pred), _one_hot(label)).item()
    e0_half = whole(_one_hot(pred), _one_hot(label), mask=_left_half()).item()
    assert e0_whole > 0 and e0_half == pytest.approx(2 * e0_whole)  # 8 of the 16 tiles are inside
    e0gt = E0GtMetric(patch_size=16, include_background=False)
    assert e0gt(_one_hot(pred), _one_hot(label), mask=_left_half()).item() == pytest.approx(
        2 * e0gt(_one_hot(pred), _one_hot(label)).item())
    # a tile with one pixel inside counts; an image with no tile inside gives NaN (left out by MONAI's reductions)
    corner = torch.zeros(1, 1, 64, 64)
    corner[..., 0, 0] = 1
    assert whole(_one_hot(pred), _one_hot(label), mask=corner).item() == 0.0
    assert torch.isnan(whole(_one_hot(pred), _one_hot(label), mask=torch.zeros(1, 1, 64, 64))).all()
    with pytest.raises(ValueError, match=r"mask must be a one-channel field-of-view mask for the batch \(B, 1, \*spatial\), shape \(1, 1, 64, 64\)"):
        whole(_one_hot(pred), _one_hot(label), mask=torch.ones(1, 64, 64))


def test_slice_wise_betti_errors_skip_slices_tiles_outside():
    label = torch.zeros(1, 1, 32, 32, 4)
    label[..., 4:28, 10, :] = 1
    pred = label.clone()
    pred[..., 16, 10, :] = 0  # every slice split once
    mask = torch.zeros(1, 1, 32, 32, 4)
    mask[..., :16, :, :] = 1  # the split lies on the border of the inside region
    metric = BettiErrorMetric(patch_size=16, error="e0", slice_axis=2, include_background=False)
    reference = metric(_one_hot(pred), _one_hot(label), mask=mask)
    noisy = torch.where(mask > 0, pred, torch.ones_like(pred))
    assert torch.equal(metric(_one_hot(noisy), _one_hot(label), mask=mask), reference)


def test_metric_handler_passes_each_images_mask():
    from ignite.engine import Engine

    from contextloss_monai.handlers import BettiError

    label = _line_label()[0]
    pred = _with_gap(label)
    mask = _left_half()[0]
    noisy = torch.where(mask > 0, pred, torch.ones_like(pred))

    def step(engine, batch):
        return batch

    for output_transform, expected in ((lambda o: ([_one_hot(noisy[None])[0]], [_one_hot(label[None])[0]], [mask]), "masked"),
                                       (lambda o: ([_one_hot(pred[None])[0]], [_one_hot(label[None])[0]]), "plain")):
        engine = Engine(step)
        handler = BettiError(error="e0", include_background=False, patch_size=16, output_transform=output_transform)
        handler.attach(engine, "e0")
        engine.run([0], max_epochs=1)
        full = BettiErrorMetric(patch_size=16, error="e0", include_background=False)(_one_hot(pred[None]), _one_hot(label[None]))
        factor = 2 if expected == "masked" else 1
        assert engine.state.metrics["e0"] == pytest.approx(factor * full.item())


def test_a_mask_of_the_wrong_shape_is_named_before_training(tmp_path):
    from contextloss_monai.data import check_dataset_items, load_datalist
    from contextloss_monai.data.dataset_folder import save_nifti
    from contextloss_monai.data.synthetic import write_synthetic_dataset

    data = tmp_path / "retina"
    write_synthetic_dataset("retina", data, n_train=5, n_test=1, size=64, seed=0, progress=False)
    items = load_datalist(data, "training")
    check_dataset_items(items, in_channels=3)  # the generator's masks fit
    save_nifti(np.ones((64, 60), np.uint8), items[1]["mask"], spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match=f"mask {items[1]['mask']} has shape \\(64, 60\\)"):
        check_dataset_items(items, in_channels=3)
    with pytest.raises(ValueError, match="field-of-view mask's shape"):
        check_dataset_items([{k: v for k, v in items[1].items() if k != "label"}], in_channels=3)  # inference items too
