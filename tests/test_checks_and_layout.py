"""Checks run once per public entry point (private kernels trust their callers); one owner of the run layout,
whose stage names the bundles and the experiment scripts share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import contextloss_monai.checks as checks
from conftest import line_with_gap, logits_from, parallel_lines_with_bridge
from contextloss_monai.experiment import Method
from contextloss_monai.layout import RunLayout
from contextloss_monai.losses import ClDiceLoss, CompoundClDiceLoss, ContextLoss
from contextloss_monai.metrics import compute_betti_error, compute_e0_gt
from contextloss_monai.topology import critical_pixel_mask

ROOT = Path(__file__).resolve().parents[1]
MODULES_WITH_CHECKS = (
    "contextloss_monai.losses.pixel",
    "contextloss_monai.topology.critical_mask",
    "contextloss_monai.topology.skeleton",
    "contextloss_monai.topology.betti",
    "contextloss_monai.metrics.base",
)


@pytest.fixture
def count_checks(monkeypatch):
    """Count the full-tensor checks (``check_binary``, also inside ``as_bool_array``) and the shape checks,
    wherever a module imported them."""
    import importlib

    calls = {"check_binary": 0, "check_batched_spatial": 0}

    def counting(name):
        original = getattr(checks, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        return wrapper

    for name in calls:
        wrapped = counting(name)
        monkeypatch.setattr(checks, name, wrapped)
        for module in MODULES_WITH_CHECKS:
            module = importlib.import_module(module)
            if hasattr(module, name):
                monkeypatch.setattr(module, name, wrapped)
    return calls


def test_context_loss_checks_its_target_once(count_checks):
    pred, label = line_with_gap()
    target = torch.cat([~label, label], 1).float()  # one-hot, checked as binary
    for skeleton in ("soft", "exact"):
        count_checks.update(check_binary=0, check_batched_spatial=0)
        ContextLoss(gamma=0.5, softmax=True, skeleton=skeleton)(logits_from(pred), target)
        assert count_checks == {"check_binary": 1, "check_batched_spatial": 0}
    count_checks.update(check_binary=0)
    ContextLoss(gamma=0.5, softmax=True, to_onehot_y=True)(logits_from(pred), label.float())
    assert count_checks["check_binary"] == 0  # one-hot of checked class indices is binary by construction


def test_metrics_check_each_input_once(count_checks):
    pred, label = line_with_gap()
    compute_betti_error(pred.float(), label.float(), patch_size=[5, 20])
    assert count_checks["check_binary"] == 2  # y_pred and y, not again per tile or per Betti number
    count_checks.update(check_binary=0)
    compute_e0_gt(pred.float(), label.float(), patch_size=[5, 20])
    assert count_checks["check_binary"] == 2


def test_public_functions_still_reject_bad_input():
    pred, label = line_with_gap()
    with pytest.raises(ValueError, match="label must be binary"):
        critical_pixel_mask(pred, label.float() * 2)
    with pytest.raises(ValueError, match="skeleton must be one of"):
        critical_pixel_mask(pred, label, skeleton="fast")
    with pytest.raises(ValueError, match="error must be one of"):
        compute_betti_error(pred, label, error="e3")
    with pytest.raises(ValueError, match="target must be binary"):
        ContextLoss(softmax=True)(logits_from(pred), torch.cat([~label, label], 1).float() * 255)


@pytest.mark.parametrize("loss", [ClDiceLoss(softmax=True), CompoundClDiceLoss(softmax=True)])
def test_baseline_losses_check_targets_like_context_loss(loss):
    pred, label = line_with_gap()
    logits = logits_from(pred)
    with pytest.raises(ValueError, match="target must be binary"):
        loss(logits, torch.cat([~label, label], 1).float() * 255)
    with pytest.raises(ValueError, match="input must be 4D"):
        loss(torch.randn(1, 2, 16), torch.zeros(1, 2, 16))
    with pytest.raises(ValueError, match="input must be 4D"):
        loss(torch.randn(1, 2, 4, 4, 4, 4), torch.zeros(1, 2, 4, 4, 4, 4))
    assert torch.isfinite(loss(logits, torch.cat([~label, label], 1).float()))


def test_critical_mask_returns_its_two_parts():
    pred, label = line_with_gap()
    missed, false_positive = critical_pixel_mask(pred, label, return_parts=True)
    assert missed.any() and not false_positive.any()
    assert torch.equal(missed | false_positive, critical_pixel_mask(pred, label))
    pred, label = parallel_lines_with_bridge()
    missed, false_positive = critical_pixel_mask(pred.numpy(), label.numpy(), return_parts=True)
    assert isinstance(missed, np.ndarray) and false_positive.any() and not missed.any()


def test_check_option_uses_monai_lookup():
    assert checks.check_option("soft", ("soft", "exact"), "skeleton") == "soft"
    with pytest.raises(ValueError, match=r"skeleton must be one of \('soft', 'exact'\), got 'fast'"):
        checks.check_option("fast", ("soft", "exact"), "skeleton")


def test_run_layout_names_agree_with_the_bundles(tmp_path):
    from monai.bundle import ConfigParser

    configs = ROOT / "bundles" / "roads_2d" / "configs"
    for loss_name, gamma, restricted in (("context", 0.2, "mask_mean"), ("dice_ce", 0.2, "mask_mean"), ("thin_context", 0.1, "mask_mean"),
                                         ("context", 0.2, "hadamard")):
        parser = ConfigParser()
        parser.read_config([str(configs / "train.yaml"), str(configs / "finetune.yaml")])
        parser.update({"bundle_root": str(tmp_path), "loss_name": loss_name, "gamma": gamma, "restricted": restricted})
        stage = parser.get_parsed_content("stage")
        method = Method(loss_name, gamma, restricted)
        assert stage == RunLayout.finetune_stage(loss_name, gamma, restricted) == RunLayout.stage_of(method.key)
        assert parser.get_parsed_content("output_dir") == str(RunLayout(tmp_path).log_dir(stage))
        assert parser.get_parsed_content("pretrained_path") == str(RunLayout(tmp_path).pretrained_model)
    assert RunLayout.finetune_stage("dice_ce", 0.7, "hadamard") == "finetune_dice_ce"  # Dice & CE has no γ
    # run names keep their meaning across the change of default: the mask_mean run is unsuffixed, the rest named
    assert RunLayout.finetune_stage("context", 0.2, "mask_mean") == "finetune_context_g0.2"
    assert RunLayout.finetune_stage("context", 0.2, "hadamard") == "finetune_context_g0.2_hadamard"  # its own logs and model
    from contextloss_monai.experiment import methods_for
    from contextloss_monai.losses import DEFAULT_RESTRICTED, ContextLoss

    assert ContextLoss().restricted == Method("context").restricted == DEFAULT_RESTRICTED == "hadamard"
    assert ConfigParser.load_config_file(str(configs / "train.yaml"))["restricted"] == DEFAULT_RESTRICTED  # the bundles too
    assert [m.key for m in methods_for(["context", "cldice"], [0.2])] == ["pretrained", "context_g0.2_hadamard", "cldice_g0.2"]
    ablation = methods_for(["dice_ce", "context", "cldice"], [0.2], ("mask_mean", "hadamard"))
    assert [m.key for m in ablation] == ["pretrained", "dice_ce", "context_g0.2", "context_g0.2_hadamard", "cldice_g0.2"]
    assert [m.label for m in ablation[2:]] == ["CLoss (γ = 0.2), mask_mean reading", "CLoss (γ = 0.2)", "clDice (γ = 0.2)"]
    layout = RunLayout(tmp_path)
    assert layout.model(Method(None).key) == layout.pretrained_model == tmp_path / "models" / "pretrained.pt"
    assert layout.model() == tmp_path / "models" / "model.pt"
    assert layout.model("context_g0.2") == tmp_path / "models" / "model_context_g0.2.pt"
    (tmp_path / "models").mkdir()
    for epoch in (3, 12):
        layout.checkpoint("pretrain", epoch).write_bytes(b"x")
    (tmp_path / "models" / "pretrain_checkpoint_epoch=x.pt").write_bytes(b"not a checkpoint name")
    assert [e for e, _ in layout.checkpoints("pretrain")] == [3, 12]
    assert layout.checkpoints("finetune_dice_ce") == []
