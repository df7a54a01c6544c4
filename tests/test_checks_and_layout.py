"""Checks run once per public entry point (private kernels trust their callers); one owner of the run layout,
whose stage names the bundles and the experiment runner share, from one home of a method's name."""

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
    for loss_name, gamma, restricted, per_method in (("context", 0.2, "mask_mean", True), ("dice_ce", 0.2, "mask_mean", True),
                                                     ("thin_context", 0.1, "mask_mean", False), ("context", 0.2, "hadamard", False)):
        parser = ConfigParser()
        parser.read_config([str(configs / "train.yaml"), str(configs / "finetune.yaml")])
        parser.update({"bundle_root": str(tmp_path), "loss_name": loss_name, "gamma": gamma, "restricted": restricted,
                       "model_per_method": per_method})
        stage = parser.get_parsed_content("stage")
        method = Method(loss_name, gamma, restricted)
        assert stage == method.stage == RunLayout.stage_of(method.key)
        assert parser.get_parsed_content("output_dir") == str(RunLayout(tmp_path).log_dir(stage))
        assert parser.get_parsed_content("pretrained_path") == str(RunLayout(tmp_path).pretrained_model)
        # the bundle names the model from the same method the runner asks for: one computation of the key
        assert parser.get_parsed_content("model_filename") == RunLayout.model_filename(method.key if per_method else None)
    from contextloss_monai.experiment import methods_for
    from contextloss_monai.losses import DEFAULT_RESTRICTED, ContextLoss

    assert ContextLoss().restricted == Method("context").restricted == DEFAULT_RESTRICTED == "hadamard"
    assert ConfigParser.load_config_file(str(configs / "train.yaml"))["restricted"] == DEFAULT_RESTRICTED  # the bundles too
    assert [m.key for m in methods_for(["context", "cldice"], [0.2])] == ["pretrained", "context_g0.2", "cldice_g0.2"]
    ablation = methods_for(["dice_ce", "context", "cldice"], [0.2], ("mask_mean", "hadamard"))
    assert [m.key for m in ablation] == ["pretrained", "dice_ce", "context_g0.2_mask_mean", "context_g0.2", "cldice_g0.2"]
    assert [m.label for m in ablation[2:]] == ["CLoss (γ = 0.2), mask_mean reading", "CLoss (γ = 0.2)", "clDice (γ = 0.2)"]


def test_each_method_can_carry_its_own_weights():
    """``--methods name:γ``: CLoss at 0.2 and the alternatives at their authors' 1 in one run, the others at
    ``--gammas``; a method asked twice runs once; an unknown loss, a weight for dice_ce, a weight that is not a
    number or out of [0, 1] is refused naming --methods / gamma, and the command exits with a usage error."""
    from contextloss_monai.experiment import methods_for
    from contextloss_monai.experiment.benchmark import main as benchmark

    methods = methods_for(["dice_ce", "context:0.2", "skeleton_recall:1", "cbdice:1", "cldice", "thin_context:0.1,0.2"], [0.5])
    assert [m.key for m in methods] == ["pretrained", "dice_ce", "context_g0.2", "skeleton_recall_g1", "cbdice_g1", "cldice_g0.5",
                                        "thin_context_g0.1", "thin_context_g0.2"]
    assert [m.key for m in methods_for(["context", "context:0.2", "context:0.2"], [0.2])] == ["pretrained", "context_g0.2"]
    for spec, match in (("focal", "--methods: 'focal' is not a loss"), ("dice_ce:0.2", "dice_ce has no weight"),
                        ("context:heavy", "name:gamma"), ("context:", "name:gamma"), ("context:2", "gamma must be in")):
        with pytest.raises(ValueError, match=match):
            methods_for([spec], [0.2])
    with pytest.raises(SystemExit) as exit_info:
        benchmark(["--bundle", "roads_2d", "--methods", "context:heavy"])
    assert exit_info.value.code == 2


def test_one_naming_rule_for_keys_and_labels():
    """Key and label name the reading exactly when it is not the default; what a loss does not use does not name it."""
    from contextloss_monai.method import LOSS_NAMES

    for loss_name in LOSS_NAMES:
        for gamma in (0.1, 0.25):
            for reading in ("hadamard", "mask_mean"):
                method = Method(loss_name, gamma, reading)
                named = method.names_reading
                assert named == (loss_name in ("context", "context_dice", "thin_context") and reading == "mask_mean")
                assert method.key.endswith("_mask_mean") == named and ("mask_mean reading" in method.label) == named
                assert "hadamard" not in method.key + method.label
                assert Method.from_key(method.key) == method  # the key names one method
    assert Method("dice_ce", 0.7, "mask_mean") == Method("dice_ce") and Method("dice_ce", 0.7).key == "dice_ce"  # no γ, no reading
    assert Method("cldice", 0.2, "mask_mean").key == "cldice_g0.2"  # clDice has no restricted term
    assert Method(None).key == "pretrained" and Method(None).stage == "pretrain"
    with pytest.raises(ValueError, match="loss_name must be one of"):
        Method("dice")
    with pytest.raises(ValueError, match="restricted must be one of"):
        Method("context", 0.2, "mean")
    with pytest.raises(ValueError, match="gamma"):
        Method("context", 1.5)
    for bad in ("context_g0.2_hadamard", "context_g0.20", "dice_ce_g0.2", "cldice_g0.2_mask_mean", "unet"):
        with pytest.raises(ValueError, match="key"):
            Method.from_key(bad)


def test_run_layout_paths(tmp_path):
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


def test_run_folders_of_the_earlier_naming_are_refused_then_migrated(tmp_path, capsys):
    """Before 0.3.0 ``context_g0.2`` was the mask_mean run and ``context_g0.2_hadamard`` the default's; the runner
    refuses such a folder (it would read the mask_mean model as the default's) until ``migrate-run`` renames it."""
    from contextloss_monai.cli import main
    from contextloss_monai.experiment import check_naming
    from contextloss_monai.utils import read_csv_rows, write_csv_rows

    out = tmp_path / "bench"
    layout = RunLayout.of_fold(out, 0)
    earlier = {"context_g0.2": b"mask_mean", "context_g0.2_hadamard": b"hadamard", "dice_ce": b"dice", "cldice_g0.5": b"cldice"}
    for key, content in earlier.items():
        layout.model(key).parent.mkdir(parents=True, exist_ok=True)
        layout.model(key).write_bytes(content)
        layout.checkpoint(f"finetune_{key}", 4).write_bytes(content)
        layout.training_log(f"finetune_{key}").parent.mkdir(parents=True)
        layout.training_log(f"finetune_{key}").write_bytes(content)
        layout.summary(key).parent.mkdir(parents=True)
        layout.summary(key).write_bytes(content)
    layout.pretrained_model.write_bytes(b"pretrained")
    write_csv_rows(out / "results.csv", [{"fold": 0, "key": k, "method": "m"} for k in earlier])
    with pytest.raises(ValueError, match="contextloss migrate-run"):
        check_naming(layout)

    assert main(["migrate-run", str(out)]) == 0
    assert "naming rule 2" in capsys.readouterr().out
    mask_mean, default = Method("context", 0.2, "mask_mean"), Method("context", 0.2)
    for method, content in ((mask_mean, b"mask_mean"), (default, b"hadamard"), (Method("dice_ce"), b"dice"), (Method("cldice", 0.5), b"cldice")):
        assert layout.model(method.key).read_bytes() == content
        assert layout.checkpoint(method.stage, 4).read_bytes() == content
        assert layout.training_log(method.stage).read_bytes() == content
        assert layout.summary(method.key).read_bytes() == content
    assert layout.pretrained_model.read_bytes() == b"pretrained"
    assert not layout.model("context_g0.2_hadamard").exists()
    assert [r["key"] for r in read_csv_rows(out / "results.csv")] == ["context_g0.2_mask_mean", "context_g0.2", "dice_ce", "cldice_g0.5"]
    assert check_naming(layout) is layout
    # a second migration changes nothing (the folder records the rule it follows)
    assert main(["migrate-run", str(out)]) == 0
    assert layout.model(default.key).read_bytes() == b"hadamard"
    assert [r["key"] for r in read_csv_rows(out / "results.csv")][:2] == ["context_g0.2_mask_mean", "context_g0.2"]
    # a new folder is recorded on first use
    fresh = RunLayout(tmp_path / "fresh")
    assert check_naming(fresh).naming_record.is_file()
    assert main(["migrate-run", str(tmp_path / "missing")]) == 2
