"""The package pieces the bundle configs call (contextloss_monai.bundle, ChannelLastToFirst)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.networks.nets import DynUNet

from contextloss_monai.bundle import (
    LOSS_NAMES,
    PairedNetwork,
    StackedDeepSupervisionLoss,
    build_loss,
    finetune_epochs,
    load_weights,
)
from contextloss_monai.losses import (
    ClDiceLoss,
    CompoundClDiceLoss,
    ContextLoss,
    DiceCECBDiceLoss,
    DiceCESkeletonRecallLoss,
    FieldOfViewLoss,
)
from contextloss_monai.transforms import ChannelLastToFirst, ChannelLastToFirstd, SplitPaird


def test_build_loss_names_the_papers_methods():
    expected = {"dice_ce": DiceCELoss, "cldice": ClDiceLoss, "compound_cldice": CompoundClDiceLoss,
                "context": ContextLoss, "context_dice": ContextLoss, "thin_context": ContextLoss,
                "skeleton_recall": DiceCESkeletonRecallLoss, "cbdice": DiceCECBDiceLoss}
    assert set(LOSS_NAMES) == set(expected)
    for name, cls in expected.items():
        loss = build_loss(name, gamma=0.3, deep_supervision=False)
        assert isinstance(loss, FieldOfViewLoss) and isinstance(loss.loss, cls), name
    assert build_loss("context_dice", deep_supervision=False).loss.alpha == 0.0
    assert build_loss("thin_context", deep_supervision=False).loss.context is False
    assert build_loss("context", gamma=0.3, deep_supervision=False).loss.gamma == 0.3
    cbdice = build_loss("cbdice", gamma=1.0, deep_supervision=False).loss
    assert (cbdice.weight, cbdice.cbdice.iters, cbdice.dice_ce.lambda_ce) == (1.0, 10, 2.0)  # the authors' settings
    assert build_loss("cldice", deep_supervision=False).loss.cldice.iter == 50 and build_loss("context", deep_supervision=False).loss.iters == 50
    assert build_loss("cbdice", iters=20, deep_supervision=False).loss.cbdice.iters == 20
    with pytest.raises(ValueError, match="loss_name must be one of"):
        build_loss("clDice")
    with pytest.raises(ValueError, match="gamma"):
        build_loss("context", gamma=1.5)


def test_stacked_deep_supervision_matches_monai():
    torch.manual_seed(0)
    heads = torch.randn(2, 3, 2, 16, 16)  # DynUNet training output: (B, heads, C, H, W)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    stacked = StackedDeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))(heads, target)
    reference = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))(list(torch.unbind(heads, 1)), target)
    torch.testing.assert_close(stacked, reference)
    single = StackedDeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))(heads[:, 0], target)
    torch.testing.assert_close(single, DiceCELoss(to_onehot_y=True, softmax=True)(heads[:, 0], target))


@pytest.mark.parametrize("spatial_dims, strides, size", [(2, [1, 2, 2, 2, 2], (64, 64)),
                                                          (3, [[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2]], (32, 32, 16))])
@pytest.mark.parametrize("loss_name", ["dice_ce", "context"])
def test_deep_supervision_at_own_resolution_is_the_loss_of_each_head_as_the_network_made_it(spatial_dims, strides, size, loss_name):
    """``own``: each head's loss on DynUNet's own-resolution head (before its upsampling) against the label downsampled
    nearest-exact, value and gradient; ``full`` stays MONAI's loss of the upsampled heads."""
    torch.manual_seed(0)
    net = DynUNet(spatial_dims, 1, 2, [3] * len(strides), strides, strides[1:], deep_supervision=True, deep_supr_num=2).train()
    image = torch.randn(2, 1, *size)
    label = torch.zeros(2, 1, *size)
    label[:, :, size[0] // 2 - 2 : size[0] // 2 + 2] = 1  # a bar: topology for ContextLoss at every resolution
    label[:, :, :, size[1] // 3] = 1
    own = build_loss(loss_name, deep_supervision_resolution="own", strides=strides, spatial_dims=spatial_dims)
    output = net(image)
    value = own(output, label)
    value.backward()
    gradient = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    output = net(image)
    assert [tuple(h.shape[2:]) for h in net.heads[:2]] != [size, size]  # the heads are smaller than the output
    reference = DeepSupervisionLoss(build_loss(loss_name, deep_supervision=False))([output[:, 0], *net.heads[:2]], label)
    reference.backward()
    torch.testing.assert_close(value, reference)
    for got, expected in zip(gradient, (p.grad for p in net.parameters())):
        torch.testing.assert_close(got, expected)
    full = build_loss(loss_name, strides=strides, spatial_dims=spatial_dims)(output.detach(), label)
    torch.testing.assert_close(full, DeepSupervisionLoss(build_loss(loss_name, deep_supervision=False))(list(torch.unbind(output.detach(), 1)), label))
    assert not torch.isclose(full, value.detach())  # the two settings differ
    with pytest.raises(ValueError, match="needs the network's strides"):
        build_loss(loss_name, deep_supervision_resolution="own")
    with pytest.raises(ValueError, match="deep_supervision_resolution must be one of"):
        build_loss(loss_name, deep_supervision_resolution="half", strides=strides)
    with pytest.raises(ValueError, match="strides must hold"):
        build_loss(loss_name, deep_supervision_resolution="own", strides=[1, 0], spatial_dims=spatial_dims)


@pytest.mark.parametrize("name", ["roads_2d", "vessap_3d"])
def test_the_bundles_pass_their_network_strides_to_the_loss(name):
    from monai.bundle import ConfigParser

    from contextloss_monai.bundle.losses import head_strides

    configs = Path(__file__).resolve().parents[1] / "bundles" / name / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.yaml"), str(configs / "finetune.yaml")])
    assert parser["deep_supervision_resolution"] == "full" and parser.get_parsed_content("loss").strides is None
    parser["deep_supervision_resolution"] = "own"
    strides, spatial_dims = parser["network_def"]["strides"], parser["network_def"]["spatial_dims"]
    assert parser.get_parsed_content("loss").strides == head_strides(strides, spatial_dims)


def test_finetune_epochs_is_five_percent_at_least_one():
    assert finetune_epochs(1000) == 50 and finetune_epochs(30) == 2 and finetune_epochs(2) == 1
    with pytest.raises(ValueError, match="pretrain_epochs"):
        finetune_epochs(0)


def test_finetune_epochs_from_steps_round_up_to_whole_epochs():
    assert finetune_epochs(30, steps=500, steps_per_epoch=250) == 2
    assert finetune_epochs(30, steps=501, steps_per_epoch=250) == 3  # at least the steps asked for
    assert finetune_epochs(30, steps=3, steps_per_epoch=5) == 1
    with pytest.raises(ValueError, match="finetune_steps must be a positive integer"):
        finetune_epochs(30, steps=0, steps_per_epoch=5)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        finetune_epochs(30, steps=10, steps_per_epoch=None)


def _net(filters):
    return DynUNet(2, 3, 2, [[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]], [[2, 2]] * 2, filters=filters)


def test_load_weights(tmp_path):
    source, target = _net([8, 16, 32]), _net([8, 16, 32])
    torch.save({"model": source.state_dict()}, tmp_path / "wrapped.pt")
    load_weights(target, tmp_path / "wrapped.pt")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, tmp_path / "ddp.pt")
    load_weights(_net([8, 16, 32]), tmp_path / "ddp.pt")
    with pytest.raises(ValueError, match="pretrained_path .* does not fit the bundle's network_def: shape mismatch"):
        load_weights(_net([4, 8, 16]), tmp_path / "wrapped.pt", setting="pretrained_path")
    with pytest.raises(FileNotFoundError, match="model_path .*missing.pt does not exist"):
        load_weights(target, tmp_path / "missing.pt")


def test_paired_network_and_split():
    first, second = torch.nn.Conv2d(3, 2, 1), torch.nn.Conv2d(3, 2, 1)
    x = torch.randn(1, 3, 8, 8)
    out = PairedNetwork(first, second)(x)
    torch.testing.assert_close(out, torch.cat([first(x), second(x)], 1))
    split = SplitPaird("pred", pretrained_key="pred_pretrained")({"pred": out[0]})
    torch.testing.assert_close(split["pred"], first(x)[0])
    torch.testing.assert_close(split["pred_pretrained"], second(x)[0])
    with pytest.raises(ValueError, match="even number of channels"):
        SplitPaird("pred")({"pred": torch.zeros(3, 4, 4)})


def test_channel_last_to_first_fixes_the_spatial_shape():
    image = MetaTensor(torch.zeros(10, 12, 3), meta={"spatial_shape": np.array([10, 12, 3]), "original_channel_dim": -1})
    out = ChannelLastToFirstd("image")({"image": image})["image"]
    assert out.shape == (3, 10, 12)
    assert list(out.meta["spatial_shape"]) == [10, 12] and np.isnan(out.meta["original_channel_dim"])
    assert ChannelLastToFirst()(np.zeros((4, 5, 2))).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="img must have"):
        ChannelLastToFirst()(np.zeros((4, 5)))


def test_metrics_report(tmp_path):
    from ignite.engine import Engine, Events

    from contextloss_monai.handlers import MetricsReport

    engine = Engine(lambda engine, batch: batch)
    # what MONAI metric handlers with save_details=True leave behind: per-image (B, C) values
    details = {"dice": torch.tensor([[0.5], [1.0]]), "ags": torch.tensor([[float("nan")], [80.0]])}
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "metric_details", details))
    MetricsReport(tmp_path, extra={"evaluation": "t"}).attach(engine)
    batches = [{"image": MetaTensor(torch.zeros(1, 1, 2, 2), meta={"filename_or_obj": [f"/x/{n}.nii.gz"]})} for n in "ab"]
    engine.run(batches, max_epochs=1)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "image,dice,ags" and rows[1].startswith("a,0.5,nan") and rows[2] == "b,1,80"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_images"] == 2 and summary["evaluation"] == "t"
    assert summary["metrics"]["dice"] == {"mean": 0.75, "std": 0.25, "count": 2}
    assert summary["metrics"]["ags"]["mean"] == 80.0 and summary["metrics"]["ags"]["count"] == 1


def test_epoch_logger_keeps_validation_columns(tmp_path):
    """Validation runs every few epochs: its columns must survive epochs without validation, also across runs."""
    from ignite.engine import Engine, Events

    from contextloss_monai.handlers import EpochLogger

    validator = Engine(lambda e, b: None)
    trainer = Engine(lambda e, b: {"loss": torch.tensor(1.0)})

    @trainer.on(Events.EPOCH_COMPLETED)
    def _validate(engine):  # like ValidationHandler with interval 2, attached before the logger
        if engine.state.epoch % 2 == 0:
            validator.state.epoch, validator.state.metrics = engine.state.epoch, {"val_mean_dice": 0.5}

    EpochLogger(tmp_path, validator=validator, stage="pretrain").attach(trainer)
    trainer.run([0, 1], max_epochs=3)
    import csv

    with (tmp_path / "training_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["steps"] for r in rows] == ["2", "4", "6"]  # optimizer steps so far: two batches per epoch
    assert [r["val_mean_dice"] for r in rows] == ["", "0.5", ""]
    assert all(float(r["seconds"]) >= 0 and float(r["loss"]) == 1.0 for r in rows)
    # the stage started again from scratch (not resumed): its 2 epochs replace the 3 rows, no duplicates
    trainer = Engine(lambda e, b: {"loss": torch.tensor(2.0)})
    EpochLogger(tmp_path, stage="pretrain").attach(trainer)
    trainer.run([0, 1], max_epochs=2)
    with (tmp_path / "training_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["epoch"], float(r["loss"])) for r in rows] == [("1", 2.0), ("2", 2.0)]


@pytest.mark.parametrize("scores, patience, epochs_run", [([0.5, 0.6, 0.6, 0.55, 0.7], 2, 4), ([0.5, 0.6, 0.7, 0.8, 0.9], 2, 5),
                                                           ([0.5, 0.4, 0.4, 0.4, 0.4], None, 5)])
def test_early_stop_on_plateau(scores, patience, epochs_run):
    """Pretraining stops after ``patience`` validations without a better Dice; ``None`` never stops it."""
    from ignite.engine import Engine, Events

    from contextloss_monai.handlers import EarlyStopOnPlateau

    validator = Engine(lambda e, b: None)
    trainer = Engine(lambda e, b: None)
    validator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(val_mean_dice=scores[trainer.state.epoch - 1]))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))  # like ValidationHandler, interval 1
    EarlyStopOnPlateau(validator, "val_mean_dice", patience).attach(trainer)
    completed = []
    trainer.add_event_handler(Events.COMPLETED, lambda e: completed.append(e.state.epoch))  # FinalModelSaver's event
    trainer.run([0], max_epochs=len(scores))
    assert trainer.state.epoch == epochs_run and completed == [epochs_run]  # an early stop still saves the final model
    with pytest.raises(ValueError, match="pretrain_patience must be a positive integer"):
        EarlyStopOnPlateau(validator, "val_mean_dice", 0)


def test_early_stop_counts_improvements_below_min_delta_as_none_without_deprecation_warnings():
    """Gains of 0.02 are not improvements with ``min_delta=0.05``: stops after ``patience`` of them; Ignite's
    deprecated ``min_delta`` keyword is not used (no DeprecationWarning)."""
    import warnings

    from ignite.engine import Engine, Events

    from contextloss_monai.handlers import EarlyStopOnPlateau

    scores = [0.5, 0.52, 0.54, 0.56, 0.58]
    validator, trainer = Engine(lambda e, b: None), Engine(lambda e, b: None)
    validator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(val_mean_dice=scores[trainer.state.epoch - 1]))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        EarlyStopOnPlateau(validator, "val_mean_dice", 2, min_delta=0.05).attach(trainer)
    trainer.run([0], max_epochs=len(scores))
    assert trainer.state.epoch == 3
