"""ContextLoss and the clDice baselines: values, gradients, MONAI compatibility, bad input."""

from __future__ import annotations

import pytest
import torch
from conftest import line_with_gap, logits_from, requires_cuda, tube_with_gap
from monai.losses import DeepSupervisionLoss, DiceCELoss, DiceLoss, SoftclDiceLoss, SoftDiceclDiceLoss

from contextloss_monai.losses import (ClDiceLoss, CompoundClDiceLoss, ContextLoss, DiceCECBDiceLoss, DiceCESkeletonRecallLoss,
                                     pixelwise_cross_entropy)
from contextloss_monai.topology import critical_pixel_mask


def _dice_ce(alpha=0.5, **kwargs):
    return DiceCELoss(lambda_dice=1 - alpha, lambda_ce=alpha, **kwargs)


def test_perfect_prediction_gives_the_scaled_pixel_loss():
    _, label = line_with_gap()
    logits = logits_from(label)
    loss = ContextLoss(gamma=0.2, softmax=True)(logits, torch.cat([~label, label], 1).float())
    reference = _dice_ce(softmax=True, include_background=False)(logits, torch.cat([~label, label], 1).float())
    assert torch.allclose(loss, 0.8 * reference)


#: how much harder, at least, the restricted term (γ = 0.5) pushes the gap than the pixel loss alone, relative to
#: the rest of the image, in the Hadamard reading (2.0 on this scene; 31 for mask_mean, which divides the restricted
#: CE by the mask's 12 pixels instead of the image's 360; without a restricted term the ratio would stay 1)
FACTOR_HADAMARD = 1.5


def _fixed_mask_loss(logits, onehot, mask, gamma=0.2, alpha=0.5, restricted="hadamard"):
    """Eq. 2 with a given mask on the foreground channel (one sample, one class), written out by hand: the
    restricted CE divided by the mask's entries (``hadamard``) or its pixels (``mask_mean``)."""
    pixel = _dice_ce(alpha, softmax=True, include_background=False)(logits, onehot)
    probs = torch.softmax(logits, 1)[:, 1:]
    y = onehot[:, 1:]
    inter = (probs * mask * y * mask).sum()
    dice = 1 - (2 * inter + 1e-5) / ((probs * mask).sum() + (y * mask).sum() + 1e-5)
    ce = (pixelwise_cross_entropy(logits, onehot) * mask).sum() / (mask.numel() if restricted == "hadamard" else mask.sum())
    return (1 - gamma) * pixel + gamma * ((1 - alpha) * dice + alpha * ce)


@pytest.mark.parametrize("restricted", ["hadamard", "mask_mean", None])
def test_value_and_gradient_match_eq2_with_a_detached_mask(restricted):
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    base = logits_from(pred) + 0.3 * torch.randn(1, 2, 9, 40, generator=torch.Generator().manual_seed(0))
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    loss = ContextLoss(gamma=0.2, softmax=True, **({} if restricted is None else {"restricted": restricted}))(a, onehot)
    mask = critical_pixel_mask(pred, label).float()
    assert mask.sum() == 12
    reference = _fixed_mask_loss(b, onehot, mask, restricted=restricted or "hadamard")  # None: the default
    assert torch.allclose(loss, reference, atol=1e-6)
    loss.backward()
    reference.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)
    assert torch.isfinite(a.grad).all()


@pytest.mark.parametrize("restricted, factor", [("hadamard", FACTOR_HADAMARD), ("mask_mean", 3)])
def test_restricted_term_pushes_the_gap_harder_than_the_pixel_loss(restricted, factor):
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    grads = {}
    for gamma in (0.0, 0.5):
        logits = logits_from(pred).requires_grad_()
        ContextLoss(gamma=gamma, softmax=True, restricted=restricted)(logits, onehot).backward()
        grads[gamma] = logits.grad[0, 1]
    gap = (label & ~pred)[0, 0]
    # relative to the rest of the image, the gap's foreground logits get a larger push with the mask
    ratio = {g: grads[g][gap].abs().mean() / grads[g][~gap].abs().mean() for g in grads}
    assert ratio[0.5] > factor * ratio[0.0]
    assert (grads[0.5][gap] < 0).all(), "descending the loss raises the foreground logit in the gap"


def test_loss_is_lower_after_the_gap_is_filled():
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    loss_fn = ContextLoss(gamma=0.2, softmax=True)
    assert loss_fn(logits_from(label), onehot) < loss_fn(logits_from(pred), onehot)


def test_empty_label_and_empty_mask_give_finite_loss_and_gradient():
    empty = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    for logits in (logits_from(empty), torch.randn(2, 2, 16, 16)):
        logits = logits.clone().requires_grad_()
        loss = ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True)(logits, empty.float())
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_gradient_flows_only_through_the_prediction():
    pred, label = line_with_gap()
    target = torch.cat([~label, label], 1).float().requires_grad_()
    logits = logits_from(pred).requires_grad_()
    ContextLoss(gamma=0.2, softmax=True)(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # the mask is computed from the target without gradient; only the pixel terms touch the target
    mask_free = ContextLoss(gamma=0.0, softmax=True)(logits.detach(), target)
    assert mask_free.requires_grad


def test_sigmoid_single_channel_path():
    pred, label = line_with_gap()
    logits = ((pred.float() * 2 - 1) * 4).requires_grad_()
    loss = ContextLoss(gamma=0.2, sigmoid=True)(logits, label.float())
    pixel = _dice_ce(sigmoid=True)(logits, label.float())
    assert loss > 0.8 * pixel  # the gap adds a restricted term
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[label & ~pred] < 0).all()
    perfect = ContextLoss(gamma=0.2, sigmoid=True)(((label.float() * 2 - 1) * 4), label.float())
    assert torch.allclose(perfect, 0.8 * _dice_ce(sigmoid=True)((label.float() * 2 - 1) * 4, label.float()))


def test_one_channel_is_the_foreground_without_a_warning_per_step():
    """A binary sigmoid model (one channel) with the default include_background=False: MONAI keeps the only channel
    but warns at every call; our losses give the same value as with include_background=True and stay silent. With
    two channels include_background=False still leaves the background out."""
    import warnings

    from contextloss_monai.losses import ForegroundDiceCELoss

    pred, label = line_with_gap()
    logits, target = (pred.float() * 2 - 1) * 4 + 0.3, label.float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MONAI's "single channel prediction" warning would fail here
        values = [ContextLoss(gamma=0.2, sigmoid=True)(logits, target), CompoundClDiceLoss(gamma=0.2, sigmoid=True)(logits, target),
                  ForegroundDiceCELoss(sigmoid=True)(logits, target)]
    expected = [ContextLoss(gamma=0.2, sigmoid=True, include_background=True)(logits, target),
                CompoundClDiceLoss(gamma=0.2, sigmoid=True, include_background=True)(logits, target),
                DiceCELoss(sigmoid=True, include_background=True)(logits, target)]
    for value, reference in zip(values, expected):
        torch.testing.assert_close(value, reference)
    two = logits_from(pred)
    torch.testing.assert_close(ForegroundDiceCELoss(softmax=True, to_onehot_y=True)(two, target),
                               DiceCELoss(softmax=True, to_onehot_y=True, include_background=False)(two, target))
    assert not torch.allclose(ForegroundDiceCELoss(softmax=True, to_onehot_y=True)(two, target),
                              DiceCELoss(softmax=True, to_onehot_y=True, include_background=True)(two, target))


@pytest.mark.parametrize("restricted", ["hadamard", "mask_mean"])
def test_multi_class_one_mask_per_class(restricted):
    pred_gap, label_line = line_with_gap()
    # class 1: the line with a gap; class 2: a perfectly predicted block
    labels = torch.zeros(1, 1, 9, 40)
    labels[label_line] = 1
    labels[..., 0:2, 0:10] = 2
    prediction = torch.zeros(1, 1, 9, 40, dtype=torch.long)
    prediction[pred_gap] = 1
    prediction[..., 0:2, 0:10] = 2
    logits = 4 * torch.nn.functional.one_hot(prediction[:, 0], 3).permute(0, 3, 1, 2).float()
    loss_fn = ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True, restricted=restricted)
    onehot = torch.nn.functional.one_hot(labels[:, 0].long(), 3).permute(0, 3, 1, 2).float()
    pixel = _dice_ce(softmax=True, include_background=False)(logits, onehot)
    mask = torch.zeros(1, 2, 9, 40)
    mask[:, 0] = (label_line & ~pred_gap)[:, 0]
    probs = torch.softmax(logits, 1)[:, 1:]
    dice = DiceLoss(reduction="none")(probs * mask, onehot[:, 1:] * mask).flatten()[0]  # only class 1 has a mask
    ce = (pixelwise_cross_entropy(logits, onehot)[:, 0] * mask[:, 0]).sum() / mask.sum()
    if restricted == "hadamard":  # the Dice over both classes' pairs (class 2's empty mask adds 0), the CE over all entries
        dice, ce = dice / 2, ce * mask.sum() / mask.numel()
    expected = 0.8 * pixel + 0.2 * (0.5 * dice + 0.5 * ce)
    assert torch.allclose(loss_fn(logits, labels), expected, atol=1e-6)


def test_alpha_zero_is_dice_only_and_gamma_zero_is_dice_ce():
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    logits = logits_from(pred)
    dice_ce = _dice_ce(softmax=True, include_background=False)(logits, onehot)
    assert torch.allclose(ContextLoss(gamma=0.0, softmax=True)(logits, onehot), dice_ce)
    dice_only = ContextLoss(gamma=0.2, alpha=0.0, softmax=True)(logits, onehot)
    mask = critical_pixel_mask(pred, label).float()
    probs = torch.softmax(logits, 1)[:, 1:]
    restricted = DiceLoss()(probs * mask, onehot[:, 1:] * mask)
    expected = 0.8 * DiceLoss(softmax=True, include_background=False)(logits, onehot) + 0.2 * restricted
    assert torch.allclose(dice_only, expected, atol=1e-6)


def test_thin_context_uses_the_error_skeleton():
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    logits = logits_from(pred)
    thin = ContextLoss(gamma=0.2, softmax=True, context=False)(logits, onehot)
    mask = critical_pixel_mask(pred, label, context=False).float()
    assert mask.sum() == 4
    assert torch.allclose(thin, _fixed_mask_loss(logits, onehot, mask), atol=1e-6)


def test_soft_and_exact_skeleton_losses_agree_on_the_gap():
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    logits = logits_from(pred)
    soft = ContextLoss(skeleton="soft", softmax=True)(logits, onehot)
    exact = ContextLoss(skeleton="exact", softmax=True)(logits, onehot)
    assert torch.allclose(soft, exact)


def test_3d_tube_gap_loss():
    pred, label = tube_with_gap()
    logits = logits_from(pred).requires_grad_()
    loss = ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True)(logits, label.float())
    loss.backward()
    gap = (label & ~pred)[0, 0]
    assert torch.isfinite(logits.grad).all() and (logits.grad[0, 1][gap] < 0).all()
    filled = ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True)(logits_from(label), label.float())
    assert filled < loss


@pytest.mark.parametrize("loss_fn", [ContextLoss(softmax=True), CompoundClDiceLoss(gamma=0.2, softmax=True)])
def test_losses_work_inside_deep_supervision(loss_fn):
    pred, label = line_with_gap()
    label = torch.nn.functional.pad(label, (0, 0, 0, 7))  # 16 x 40, divisible by 2
    onehot = torch.cat([~label, label], 1).float()
    outputs = [torch.randn(1, 2, 16, 40, requires_grad=True), torch.randn(1, 2, 8, 20, requires_grad=True)]
    loss = DeepSupervisionLoss(loss_fn, weight_mode="exp")(outputs, onehot)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(o.grad).all() and o.grad.abs().sum() > 0 for o in outputs)


def test_cldice_baseline_is_monai_soft_dice_cldice():
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    logits = logits_from(pred) + torch.randn(1, 2, 9, 40, generator=torch.Generator().manual_seed(1))
    ours = ClDiceLoss(gamma=0.3, iters=10, softmax=True)(logits, onehot)
    theirs = SoftDiceclDiceLoss(iter_=10, alpha=0.3, softmax=True)(logits, onehot)
    assert torch.allclose(ours, theirs)


def test_compound_cldice_is_weighted_pixel_loss_plus_cldice():
    pred, label = line_with_gap()
    onehot = torch.cat([~label, label], 1).float()
    logits = logits_from(pred) + torch.randn(1, 2, 9, 40, generator=torch.Generator().manual_seed(2))
    ours = CompoundClDiceLoss(gamma=0.3, alpha=0.5, iters=10, softmax=True)(logits, onehot)
    pixel = _dice_ce(softmax=True, include_background=False)(logits, onehot)
    cl = SoftclDiceLoss(iter_=10, softmax=True, include_background=False)(logits, onehot)
    assert torch.allclose(ours, 0.7 * pixel + 0.3 * cl)
    assert torch.allclose(CompoundClDiceLoss(gamma=0.0, softmax=True)(logits, onehot), pixel)
    onehot_from_index = CompoundClDiceLoss(gamma=0.3, iters=10, softmax=True, to_onehot_y=True)(logits, label.float())
    assert torch.allclose(onehot_from_index, ours)


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: ContextLoss(gamma=1.5), "gamma"),
        (lambda: ContextLoss(gamma=-0.1), "gamma"),
        (lambda: ContextLoss(alpha=2), "alpha"),
        (lambda: ContextLoss(skeleton="medial"), "skeleton"),
        (lambda: ContextLoss(iters=0), "iters"),
        (lambda: ContextLoss(spacing=(1.0, -1.0)), "spacing"),
        (lambda: ContextLoss(sigmoid=True, softmax=True), "sigmoid"),
        (lambda: CompoundClDiceLoss(gamma=1.2), "gamma"),
        (lambda: CompoundClDiceLoss(iters=-3), "iters"),
        (lambda: ClDiceLoss(gamma=3), "gamma"),
    ],
)
def test_bad_arguments_raise_value_error(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize(
    "logits, target, kwargs, match",
    [
        (torch.randn(1, 2, 8, 8), torch.zeros(1, 2, 8, 9), {}, "spatial"),
        (torch.randn(1, 2, 8, 8), torch.zeros(1, 2, 8, 8, 1), {}, "dimensions"),
        (torch.randn(2, 8, 8), torch.zeros(2, 8, 8), {}, "4D"),
        (torch.randn(1, 2, 8, 8), torch.full((1, 2, 8, 8), 0.5), {}, "binary"),
        (torch.randn(1, 3, 8, 8), torch.zeros(1, 2, 8, 8), {}, "channels"),
        (torch.randn(1, 2, 8, 8), torch.full((1, 1, 8, 8), 2.0), {"to_onehot_y": True}, "class indices"),
    ],
)
def test_bad_input_raises_value_error(logits, target, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ContextLoss(softmax=True, **kwargs)(logits, target)


def test_spacing_of_the_wrong_length_is_reported_at_call_time():
    with pytest.raises(ValueError, match="spacing"):
        ContextLoss(softmax=True, to_onehot_y=True, spacing=(1.0, 1.0, 2.0))(
            torch.randn(1, 2, 8, 8), torch.zeros(1, 1, 8, 8)
        )


def test_restricted_readings_on_a_hand_made_mask():
    """``mask_mean`` averages the restricted CE over the mask's pixels and the Dice over non-empty masks;
    ``hadamard`` averages the CE map times M over all mask entries and the Dice over every (sample, class)."""
    from conftest import line_with_gap, logits_from

    from contextloss_monai.losses import pixelwise_cross_entropy
    from contextloss_monai.topology import critical_pixel_mask

    pred, label = line_with_gap()
    perfect_pred, _ = line_with_gap(gap=(0, 0))
    pred, label = torch.cat([pred, perfect_pred]), torch.cat([label, label])  # sample 1 has an empty mask
    logits = logits_from(pred, scale=2.0)
    target = torch.cat([~label, label], 1).float()
    mask = critical_pixel_mask(pred, label).float()
    assert mask[0].sum() > 0 and mask[1].sum() == 0
    ce_map = pixelwise_cross_entropy(logits, target)
    ce = {"mask_mean": (ce_map * mask).sum() / mask.sum(), "hadamard": (ce_map * mask).sum() / mask.numel()}
    from monai.losses import DiceLoss

    dice_0 = DiceLoss(reduction="none", softmax=False)(torch.softmax(logits, 1)[:1, 1:] * mask[:1], label[:1].float() * mask[:1]).mean()
    dice = {"mask_mean": dice_0, "hadamard": dice_0 / 2}
    for reading in ("mask_mean", "hadamard"):
        only_ce = ContextLoss(gamma=1.0, alpha=1.0, softmax=True, restricted=reading)(logits, target)
        torch.testing.assert_close(only_ce, ce[reading])
        only_dice = ContextLoss(gamma=1.0, alpha=0.0, softmax=True, restricted=reading)(logits, target)
        torch.testing.assert_close(only_dice, dice[reading], rtol=1e-4, atol=1e-5)
    assert ce["hadamard"] < ce["mask_mean"] / 10  # the literal reading gives the restricted CE far less weight
    empty = ContextLoss(gamma=1.0, softmax=True, restricted="hadamard")(logits[1:], target[1:])
    assert empty.item() == 0.0
    with pytest.raises(ValueError, match="restricted must be one of"):
        ContextLoss(restricted="literal")


CUDA_LOSSES = {
    "context_soft": lambda: ContextLoss(gamma=0.2, to_onehot_y=True, softmax=True),
    "context_exact": lambda: ContextLoss(gamma=0.2, skeleton="exact", to_onehot_y=True, softmax=True),
    "context_hadamard": lambda: ContextLoss(gamma=0.2, restricted="hadamard", to_onehot_y=True, softmax=True),
    "thin_context": lambda: ContextLoss(gamma=0.2, context=False, to_onehot_y=True, softmax=True),
    "cldice": lambda: ClDiceLoss(gamma=0.2, to_onehot_y=True, softmax=True),
    "compound_cldice": lambda: CompoundClDiceLoss(gamma=0.2, to_onehot_y=True, softmax=True),
    "skeleton_recall": lambda: DiceCESkeletonRecallLoss(on_the_fly=True, to_onehot_y=True, softmax=True),  # the tube from the label
    "cbdice": lambda: DiceCECBDiceLoss(to_onehot_y=True, softmax=True),
}


def _noisy_scene(dims: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a prediction with a gap plus noise (so masks, skeletons and gradients are not trivial), and
    the class-index label."""
    pred, label = line_with_gap() if dims == 2 else tube_with_gap()
    noise = 1.5 * torch.randn((1, 2, *pred.shape[2:]), generator=torch.Generator().manual_seed(seed))
    return logits_from(pred) + noise, label.float()


@requires_cuda
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", sorted(CUDA_LOSSES))
def test_losses_on_cuda_match_cpu(name, dims):
    logits, target = _noisy_scene(dims)
    results = []
    for device in ("cpu", "cuda"):
        z = logits.detach().to(device).requires_grad_(True)  # a leaf on each device
        value = CUDA_LOSSES[name]()(z, target.to(device))
        value.backward()
        assert value.device.type == device
        results.append((value.detach().cpu(), z.grad.cpu()))
    (cpu_value, cpu_grad), (gpu_value, gpu_grad) = results
    torch.testing.assert_close(gpu_value, cpu_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu_grad, cpu_grad, rtol=1e-4, atol=1e-6)
    assert cpu_grad.abs().sum() > 0


@requires_cuda
@pytest.mark.parametrize("dims", [2, 3])
def test_soft_context_loss_never_waits_for_the_gpu(dims):
    """Soft mode on CUDA with cuCIM: no host synchronisation inside the forward pass (torch's sync debug mode
    raises on any), and no device-to-host copy at all (the profiler also sees CuPy's)."""
    pytest.importorskip("cucim")
    from torch.profiler import ProfilerActivity, profile

    logits, target = (t.cuda() for t in _noisy_scene(dims))
    loss = ContextLoss(gamma=0.2, to_onehot_y=True, softmax=True)
    loss(logits, target)  # warm-up: CuPy compiles its kernels on the first call
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        value = loss(logits, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        loss(logits, target)
        torch.cuda.synchronize()
    copies = [e.name for e in prof.events() if "DtoH" in e.name or "Device -> Pageable" in e.name]
    assert not copies, copies
    assert torch.isfinite(value).item()


@requires_cuda
def test_losses_take_bfloat16_autocast_outputs_on_cuda():
    """Under autocast the network's bf16 logits give a float32 loss equal to the float32 loss of the same logits."""
    logits, target = (t.cuda() for t in _noisy_scene(2))
    half = logits.to(torch.bfloat16)
    for name in ("context_soft", "compound_cldice"):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            value = CUDA_LOSSES[name]()(half, target)
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, CUDA_LOSSES[name]()(half.float(), target), rtol=1e-5, atol=1e-6)
