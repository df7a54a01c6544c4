"""Skeleton Recall: the tubed skeleton of the data pipeline and the soft recall loss, on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from contextloss_monai.losses import DiceCESkeletonRecallLoss, SkeletonRecallLoss
from contextloss_monai.transforms import SkeletonTube, SkeletonTubed, tubed_skeleton


def _thick_line(size: int = 48, width: int = 7) -> torch.Tensor:
    """A horizontal bar ``width`` pixels thick, class indices (1, 1, size, size)."""
    label = torch.zeros(1, 1, size, size)
    label[..., size // 2 - width // 2 : size // 2 + width // 2 + 1, 4 : size - 4] = 1
    return label


def _logits(binary: torch.Tensor) -> torch.Tensor:
    """Confident two-class logits for a binary map (1, 1, ...): foreground where it is 1."""
    return torch.cat([5 - 10 * binary, 10 * binary - 5], dim=1)


def test_the_tube_is_a_thin_band_around_the_centre_line_inside_the_label():
    label = _thick_line()
    tube = SkeletonTube()(label[0])
    assert tube.shape == label[0].shape and tube.dtype == label.dtype
    assert not (tube > label[0]).any()  # inside the label
    assert tube[0, :, 24].sum() == 5  # across the bar's middle: the skeleton row, dilated twice with the cross (2 + 1 + 2)
    assert tube.sum() < label.sum() / 1.2  # thinner than the 7-pixel bar
    assert SkeletonTube(dilations=0)(label[0])[0, :, 24].sum() == 1  # the bare skeleton: one pixel across
    multi = label[0].clone()
    multi[..., 24:] *= 2  # two classes along the bar: the tube carries each pixel's class
    assert set(SkeletonTube()(multi).unique().tolist()) == {0, 1, 2}
    assert SkeletonTube()(torch.zeros(1, 16, 16)).sum() == 0  # an empty label: an empty tube
    volume = np.zeros((20, 20, 20), np.uint8)
    volume[8:13, 8:13, 2:18] = 1
    tube3d = tubed_skeleton(volume)
    assert tube3d.any() and not (tube3d > volume).any() and tube3d.sum() < volume.sum()
    item = SkeletonTubed()({"label": label[0]})
    assert torch.equal(item["tube"], tube) and torch.equal(item["label"], label[0])
    with pytest.raises(ValueError, match=r"label must be a channel-first class-index label \(1, H, W\)"):
        SkeletonTube()(label[0].repeat(2, 1, 1))  # two channels


def test_recall_is_one_for_a_covering_prediction_and_falls_as_pieces_are_cut():
    label = _thick_line()
    tube = SkeletonTube()(label[0])[None]
    loss = SkeletonRecallLoss(to_onehot_y=True, softmax=True)
    assert loss(_logits(label), label, tube) < 1e-3  # the prediction covers the tube
    previous = -1.0
    for cuts in (1, 2, 3, 4):
        prediction = label.clone()
        for k in range(cuts):
            prediction[..., 8 + 9 * k : 11 + 9 * k] = 0  # a gap of 3 columns, each cut through the whole bar
        value = loss(_logits(prediction), label, tube).item()
        assert value > previous + 0.02, cuts  # every gap leaves more of the tube uncovered
        previous = value
    # false positives do not change a recall
    extra = label.clone()
    extra[..., :5, :] = 1
    assert loss(_logits(extra), label, tube) < 1e-3


def test_the_tube_can_be_computed_on_the_fly_and_a_forgotten_tube_is_named():
    label = _thick_line()
    logits = torch.randn(1, 2, 48, 48)
    tube = SkeletonTube()(label[0])[None]
    with pytest.raises(ValueError, match="SkeletonTubed"):
        SkeletonRecallLoss(to_onehot_y=True, softmax=True)(logits, label)
    on_the_fly = SkeletonRecallLoss(to_onehot_y=True, softmax=True, on_the_fly=True)
    assert torch.equal(on_the_fly(logits, label), SkeletonRecallLoss(to_onehot_y=True, softmax=True)(logits, label, tube))
    one_hot = torch.cat([1 - label, label], dim=1)
    assert torch.equal(SkeletonRecallLoss(softmax=True, on_the_fly=True)(logits, one_hot), on_the_fly(logits, label))
    with pytest.raises(ValueError, match="include_background"):
        SkeletonRecallLoss(include_background=True)
    with pytest.raises(ValueError, match="class indices"):
        SkeletonRecallLoss(to_onehot_y=True, softmax=True)(logits, label, tube * 3)
    with pytest.raises(ValueError, match="needs sigmoid=True"):
        SkeletonRecallLoss(softmax=True)(torch.randn(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_a_binary_sigmoid_model_gets_the_recall_of_its_one_channel():
    """One channel with sigmoid (a binary model): the recall of that channel over the binary tube, equal to the
    two-channel softmax recall whose foreground logit margin is the same; the tube on the fly is the pipeline's;
    Dice & CE + Skeleton Recall takes it too, silently."""
    import warnings

    label = _thick_line()
    tube = SkeletonTube()(label[0])[None]
    prediction = label.clone()
    prediction[..., 8:11] = 0  # one gap
    one_channel = 10 * prediction - 5  # sigmoid(x) = softmax([0, x])[1]
    two_channels = torch.cat([torch.zeros_like(one_channel), one_channel], dim=1)
    sigmoid = SkeletonRecallLoss(sigmoid=True)
    value = sigmoid(one_channel, label, tube)
    torch.testing.assert_close(value, SkeletonRecallLoss(to_onehot_y=True, softmax=True)(two_channels, label, tube))
    assert 0.02 < value.item() < 0.5  # the gap's share of the tube is missed
    covering = sigmoid(10 * label - 5, label, tube)  # every tube pixel at probability sigmoid(5)
    assert covering.item() == pytest.approx(1 - torch.sigmoid(torch.tensor(5.0)).item(), rel=1e-3)
    torch.testing.assert_close(SkeletonRecallLoss(sigmoid=True, on_the_fly=True)(one_channel, label), value)
    assert SkeletonRecallLoss(sigmoid=True, reduction="none")(one_channel, label, tube).shape == (1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compound = DiceCESkeletonRecallLoss(sigmoid=True, on_the_fly=True)(one_channel, label)
    torch.testing.assert_close(compound, DiceCELoss(sigmoid=True)(one_channel, label) + value)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_gradients_are_finite_on_empty_and_full_patches_and_zero_off_the_tube(fill):
    label = torch.full((2, 1, 24, 24, 8), fill)
    tube = torch.stack([SkeletonTube()(lab) for lab in label])
    logits = torch.randn(2, 2, 24, 24, 8, requires_grad=True)
    value = DiceCESkeletonRecallLoss(to_onehot_y=True, softmax=True)(logits, label, tube)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    recall_logits = logits.detach().clone().requires_grad_(True)
    SkeletonRecallLoss(to_onehot_y=True, softmax=True)(recall_logits, label, tube).backward()
    off = (tube == 0).expand_as(recall_logits)
    assert (recall_logits.grad[off] == 0).all()


def test_the_compound_is_dice_ce_plus_the_weighted_recall():
    torch.manual_seed(0)
    label = _thick_line()
    tube = SkeletonTube()(label[0])[None]
    logits = torch.randn(1, 2, 48, 48)
    compound = DiceCESkeletonRecallLoss(weight=0.5, to_onehot_y=True, softmax=True)
    expected = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True)(logits, label) + 0.5 * SkeletonRecallLoss(
        to_onehot_y=True, softmax=True)(logits, label, tube)
    torch.testing.assert_close(compound(logits, label, tube), expected)
    per_class = SkeletonRecallLoss(to_onehot_y=True, softmax=True, reduction="none")(logits, label, tube)
    assert per_class.shape == (1, 1) and 0 <= per_class.item() <= 1
    for weight in (-1, float("nan"), float("inf"), "heavy"):  # a NaN weight would train a NaN model
        with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
            DiceCESkeletonRecallLoss(weight=weight)


def test_the_bundles_stack_the_tube_on_the_label_only_for_skeleton_recall():
    from contextloss_monai.bundle import build_loss, target_transforms
    from contextloss_monai.losses import OUTSIDE_LABEL
    from contextloss_monai.method import LOSS_NAMES
    from monai.transforms import Compose

    assert all(target_transforms(name) == [] for name in LOSS_NAMES if name != "skeleton_recall")  # their pipelines unchanged
    label = _thick_line()[0]
    label[..., :, :10] = OUTSIDE_LABEL  # the field-of-view mark on the left
    item = Compose(target_transforms("skeleton_recall"))({"image": torch.zeros(3, 48, 48), "label": label})
    assert set(item) == {"image", "label"} and item["label"].shape == (2, 48, 48)
    assert torch.equal(item["label"][:1], label)
    tube = item["label"][1]
    assert tube.sum() > 0 and tube[:, :10].sum() == 0 and not (tube > (label[0] == 1)).any()  # nothing of the mark
    # the loss of the bundles reads the stacked target: the same as passing the tube
    logits = torch.randn(1, 2, 48, 48)
    stacked = build_loss("skeleton_recall", gamma=1.0, deep_supervision=False)(logits, item["label"][None])
    inside = torch.where(label == OUTSIDE_LABEL, torch.zeros_like(label), label)[None]
    outside_logits = torch.where(label[None] == OUTSIDE_LABEL, torch.tensor([1e4, -1e4])[:, None, None], logits)
    direct = DiceCESkeletonRecallLoss(weight=1.0, to_onehot_y=True, softmax=True)(outside_logits, inside, item["label"][1:][None])
    torch.testing.assert_close(stacked, direct)
    with pytest.raises(ValueError, match="loss_name must be one of"):
        target_transforms("skeleton")


def test_the_nnunet_path_computes_the_same_tube_on_the_fly():
    from contextloss_monai.bundle import target_transforms
    from contextloss_monai.method import Method
    from monai.transforms import Compose

    label = _thick_line()
    stacked = Compose(target_transforms("skeleton_recall"))({"label": label[0]})["label"][None]
    logits = torch.randn(1, 2, 48, 48)
    pipeline = Method("skeleton_recall", 1.0).build_loss(deep_supervision=False)
    on_the_fly = Method("skeleton_recall", 1.0).build_loss(deep_supervision=False, tube_on_the_fly=True)
    assert torch.equal(on_the_fly(logits, label), pipeline(logits, stacked))
    with pytest.raises(ValueError, match="SkeletonTubed"):  # the bundles' loss without the pipeline's tube
        pipeline(logits, label)
    pytest.importorskip("nnunetv2")
    from types import SimpleNamespace

    from contextloss_monai.nnunet.trainers import nnUNetTrainerSkeletonRecall as trainer

    settings = SimpleNamespace(**{k: getattr(trainer, k) for k in ("loss_name", "gamma", "restricted", "alpha", "iters", "skeleton")})
    assert torch.equal(trainer.topology_loss(settings)(logits, label), on_the_fly(logits, label))
