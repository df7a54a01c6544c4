"""Nothing lost, nothing trusted blindly: the probes of a careless user, each with a real process, file or
engine — crashed and killed stages, resuming, bad data before training, non-finite losses and weights."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from conftest import copy_bundle
from contextloss_monai.bundle import dataset_items, load_weights
from contextloss_monai.data import check_dataset_items, load_datalist
from contextloss_monai.data.synthetic import write_synthetic_dataset
from contextloss_monai.handlers import FinalModelSaver, ResumeFromLastCheckpoint, StopOnNonFiniteLoss, TrainingStateSaver


def bundle_command(configs: list[str], *overrides: str) -> list[str]:
    config = "[" + ",".join(f"'configs/{c}.yaml'" for c in configs) + "]"
    return [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, *overrides]


def run(bundle: Path, configs: list[str], *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(bundle_command(configs, *overrides), cwd=bundle, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def roads(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("roads") / "data"
    write_synthetic_dataset("roads", folder, n_train=5, n_test=1, size=64, seed=5, progress=False)
    return folder


def broken_copy(dataset: Path, destination: Path, case: int, change) -> tuple[Path, str]:
    """A copy of ``dataset`` whose training case ``case`` is rewritten by ``change(image, label)``."""
    shutil.copytree(dataset, destination)
    item = json.loads((destination / "dataset.json").read_text())["training"][case]
    image_path, label_path = destination / item["image"], destination / item["label"]
    image, label = (np.asanyarray(nib.load(p).dataobj) for p in (image_path, label_path))
    image, label = change(image.astype(np.float32), label)
    nib.save(nib.Nifti1Image(image, np.eye(4)), image_path)
    nib.save(nib.Nifti1Image(label, np.eye(4)), label_path)
    return destination, str(image_path if "image" in change.__name__ else label_path)


def nan_image(image, label):
    image[0, 0, 0] = np.nan
    return image, label


def label_255(image, label):
    return image, (label * 255).astype(np.uint8)


def label_shape(image, label):
    return image, label[:48, :40]


def two_channel_image(image, label):
    return image[..., :2], label


@pytest.mark.parametrize("change, message", [
    (nan_image, "holds NaN or infinite values"),
    (label_255, "must hold only 0 and 1"),
    (label_shape, "must be the image's spatial shape"),
    (two_channel_image, "has 2 channel(s), the network's in_channels is 3"),
])
def test_bad_data_stops_before_training_and_keeps_the_models(roads, tmp_path, change, message):
    bundle = copy_bundle("roads_2d", tmp_path / "bundle")
    good = b"good pretrained weights"
    (bundle / "models/pretrained.pt").write_bytes(good)
    data, bad_file = broken_copy(roads, tmp_path / "data", 2, change)
    done = run(bundle, ["train"], "--dataset_dir", str(data), "--patch_size", "[64,64]", "--pretrain_epochs", "1")
    assert done.returncode != 0
    assert message in done.stderr and Path(bad_file).name in done.stderr
    assert (bundle / "models/pretrained.pt").read_bytes() == good  # nothing overwritten
    assert not list((bundle / "models").glob("*checkpoint*"))


def test_unreadable_files_are_named(roads, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(roads, data)
    items = load_datalist(data, "training")
    Path(items[1]["image"]).write_bytes(Path(items[1]["image"]).read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=f"cannot read {items[1]['image']}"):
        check_dataset_items(items, in_channels=3)
    Path(items[1]["image"]).write_text("not a NIfTI file")
    with pytest.raises(ValueError, match=f"cannot read {items[1]['image']}"):
        dataset_items(data, "train", fold=-1, in_channels=3)


def test_datalist_paths_stay_inside_the_dataset(roads, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(roads, data)
    datalist = json.loads((data / "dataset.json").read_text())
    outside = tmp_path / "outside.nii.gz"
    shutil.copy(data / datalist["training"][0]["image"], outside)
    for path in ("../../../../etc/passwd", str(outside), "../outside.nii.gz"):
        datalist["training"][0]["image"] = path
        (data / "dataset.json").write_text(json.dumps(datalist))
        with pytest.raises(ValueError, match="outside dataset_dir"):
            load_datalist(data, "training")
    assert len(load_datalist(data, "training", allow_outside=True)) == 5  # ../outside.nii.gz exists


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A process started in the background (``cmd &``, nohup, some
    CI runners) inherits SIGINT as ignored, and the child would then never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(bundle: Path, configs: list[str], *overrides: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(bundle_command(configs, *overrides), cwd=bundle, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_sigint)


def _wait_for(pattern: str, folder: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not list(folder.glob(pattern)):
        assert process.poll() is None, f"the run ended before {pattern} appeared: {process.stderr.read()[-3000:]}"
        time.sleep(0.1)
    assert list(folder.glob(pattern)), f"no {pattern} after {seconds} s"


ROADS_DATA = ["--patch_size", "[64,64]", "--val_interval", "50"]


@pytest.fixture(scope="module")
def pretrained_roads(roads, tmp_path_factory) -> Path:
    """A roads_2d bundle pretrained for one epoch; before that stage, a kill -9 during a final save is simulated
    (the temporary file it leaves): the stage's start removes it."""
    bundle = copy_bundle("roads_2d", tmp_path_factory.mktemp("pretrained"))
    leftover = bundle / "models" / ".pretrained.pt.k1ll3d.partial"
    leftover.write_bytes(b"half a checkpoint")
    result = run(bundle, ["train"], "--dataset_dir", str(roads), *ROADS_DATA, "--pretrain_epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not leftover.exists(), "the partial file of a killed save survived the next stage's start"
    return bundle


def test_a_killed_final_save_leaves_nothing_at_the_next_start(pretrained_roads):
    assert (pretrained_roads / "models" / "pretrained.pt").is_file()
    assert not list((pretrained_roads / "models").glob(".*.partial"))


@pytest.mark.parametrize("attempt", [1, 2, 3])  # several times: the launch must not depend on how pytest was started
def test_an_interrupted_finetune_keeps_the_served_model(pretrained_roads, roads, tmp_path, attempt):
    """Ctrl-C (an exception inside training) during fine-tuning: MONAI's CheckpointSaver(save_final) would
    write the half-trained weights over models/model.pt; the bundles' FinalModelSaver writes nothing."""
    bundle = tmp_path / "roads_2d"
    shutil.copytree(pretrained_roads, bundle)  # random weights in models/model.pt: "the served model"
    served = (bundle / "models/model.pt").read_bytes()
    data = ["--dataset_dir", str(roads), *ROADS_DATA]
    pretrained = (bundle / "models/pretrained.pt").read_bytes()
    process = _start(bundle, ["train", "finetune"], *data, "--pretrain_epochs", "30", "--finetune_fraction", "1.0")
    try:
        _wait_for("finetune_context_g0.2_checkpoint_epoch=*.pt", bundle / "models", process)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    assert (bundle / "models/model.pt").read_bytes() == served
    assert (bundle / "models/pretrained.pt").read_bytes() == pretrained


def test_kill_during_training_then_resume(roads, tmp_path):
    """kill -9 in the middle of a run (and a save interrupted the old way): resume continues from the
    last complete checkpoint and finishes the schedule."""
    bundle = copy_bundle("roads_2d", tmp_path)
    (bundle / "models/model.pt").unlink()
    data = ["--dataset_dir", str(roads), "--patch_size", "[64,64]", "--val_interval", "50"]
    process = _start(bundle, ["train"], *data, "--pretrain_epochs", "20")
    try:
        _wait_for("pretrain_checkpoint_epoch=[2-9].pt", bundle / "models", process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    checkpoints = sorted((bundle / "models").glob("pretrain_checkpoint_epoch=*.pt"))
    assert checkpoints, "no checkpoint before the kill"
    assert not (bundle / "models/pretrained.pt").exists()  # a killed stage writes no final model
    last = max(int(p.stem.split("=")[1]) for p in checkpoints)
    for p in checkpoints:
        torch.load(p, weights_only=True)  # every checkpoint file on disk is complete
    # an interrupted save of the old, non-atomic kind: a newer but empty checkpoint file
    (bundle / f"models/pretrain_checkpoint_epoch={last + 1}.pt").write_bytes(b"")
    (bundle / f"models/.pretrain_checkpoint_epoch={last + 1}.pt.x1y2.partial").write_bytes(b"half a save")
    done = run(bundle, ["train"], *data, "--pretrain_epochs", "20", "--resume", "true")
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert re.search(rf"resume: loading \S*models/pretrain_checkpoint_epoch={last}\.pt", log) and "cannot be read" in log
    assert (bundle / "models/pretrained.pt").is_file()
    assert [p.name for p in (bundle / "models").glob("pretrain_checkpoint_epoch=*.pt")] == ["pretrain_checkpoint_epoch=20.pt"]
    assert not list((bundle / "models").glob(".*partial"))


def test_resume_past_the_end_is_refused(roads, tmp_path):
    bundle = copy_bundle("roads_2d", tmp_path)
    data = ["--dataset_dir", str(roads), "--patch_size", "[64,64]", "--val_interval", "5"]
    assert run(bundle, ["train"], *data, "--pretrain_epochs", "2").returncode == 0
    done = run(bundle, ["train"], *data, "--pretrain_epochs", "1", "--resume", "true")
    assert done.returncode != 0 and "has already trained 2 epochs, this run has 1" in done.stdout + done.stderr


def _engine(losses: list[float], network: torch.nn.Module) -> Engine:
    def step(engine, batch):
        value = losses[engine.state.iteration - 1]
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(value)
        return {"loss": torch.tensor(value)}

    return Engine(step)


def test_non_finite_loss_stops_and_saves_nothing(tmp_path):
    network = torch.nn.Linear(2, 2)
    engine = _engine([0.1, float("nan"), 0.1], network)
    StopOnNonFiniteLoss(stage="pretrain").attach(engine)
    TrainingStateSaver(tmp_path, {"model": network}, prefix="pretrain").attach(engine)
    FinalModelSaver(tmp_path, network, "pretrained.pt").attach(engine)
    with pytest.raises(FloatingPointError, match="pretrain: the loss is nan at epoch 1, iteration 2"):
        engine.run([0, 1, 2], max_epochs=2)
    assert list(tmp_path.iterdir()) == []


def test_final_model_only_when_the_stage_completes(tmp_path):
    network = torch.nn.Linear(2, 2)
    engine = _engine([0.0] * 6, network)

    def crash(engine):
        if engine.state.epoch == 2:
            raise RuntimeError("killed")

    engine.add_event_handler(Events.EPOCH_STARTED, crash)
    TrainingStateSaver(tmp_path, {"model": network}, prefix="pretrain").attach(engine)
    FinalModelSaver(tmp_path, network, "pretrained.pt").attach(engine)
    with pytest.raises(RuntimeError, match="killed"):
        engine.run([0, 1, 2], max_epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pretrain_checkpoint_epoch=1.pt"]
    fresh = _engine([0.0] * 6, network)
    FinalModelSaver(tmp_path, network, "pretrained.pt").attach(fresh)
    fresh.run([0, 1, 2], max_epochs=2)
    assert torch.load(tmp_path / "pretrained.pt", weights_only=True).keys() == network.state_dict().keys()
    with torch.no_grad():
        network.weight[0, 0] = float("inf")
    broken = _engine([0.0] * 6, network)
    FinalModelSaver(tmp_path, network, "model.pt").attach(broken)
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        broken.run([0], max_epochs=1)
    assert not (tmp_path / "model.pt").exists()


def test_nan_weights_are_refused(tmp_path):
    network = torch.nn.Linear(2, 2)
    state = network.state_dict()
    state["weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "pretrained.pt")
    with pytest.raises(ValueError, match="pretrained_path .* holds NaN or infinite weights"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "pretrained.pt", setting="pretrained_path")


def test_resume_skips_unreadable_checkpoints(tmp_path):
    network = torch.nn.Linear(2, 2)
    engine = _engine([0.0] * 9, network)
    TrainingStateSaver(tmp_path, {"model": network}, prefix="pretrain").attach(engine)
    engine.run([0, 1, 2], max_epochs=2)
    (tmp_path / "pretrain_checkpoint_epoch=3.pt").write_bytes(b"\x00" * 10)
    found = ResumeFromLastCheckpoint(tmp_path, "pretrain", {"model": network}, enabled=True).last_checkpoint()
    assert found is not None and found[0].name == "pretrain_checkpoint_epoch=2.pt"


def _rewrite_test_case(data: Path, change) -> str:
    """Apply ``change(image, label)`` to the first test case of the dataset at ``data``; return the file it names."""
    item = json.loads((data / "dataset.json").read_text())["test"][0]
    image_path, label_path = data / item["image"], data / item["label"]
    image, label = (np.asanyarray(nib.load(p).dataobj) for p in (image_path, label_path))
    image, label = change(image.astype(np.float32), label)
    nib.save(nib.Nifti1Image(image, np.eye(4)), image_path)
    nib.save(nib.Nifti1Image(label, np.eye(4)), label_path)
    return str(image_path if "image" in change.__name__ else label_path)


def inf_image(image, label):
    image[1, 2, 0] = np.inf
    return image, label


def _edit_datalist(data: Path, edit) -> None:
    datalist = json.loads((data / "dataset.json").read_text())
    edit(datalist)
    (data / "dataset.json").write_text(json.dumps(datalist))


def empty_test_list(datalist):
    datalist["test"] = []


def duplicate_test_case(datalist):
    datalist["test"].append(dict(datalist["test"][0]))


def case_in_both_lists(datalist):
    datalist["training"].append(dict(datalist["test"][0], fold=0))


@pytest.mark.parametrize("change, message", [
    (inf_image, "holds NaN or infinite values"),
    (label_255, "must hold only 0 and 1"),
    (label_shape, "must be the image's spatial shape"),
    (empty_test_list, "the 'test' list of"),
    (duplicate_test_case, "names case(s) ['roads_005'] more than once"),
    (case_in_both_lists, "case(s) ['roads_005'] are in both the 'training' and the 'test' list"),
])
def test_evaluation_checks_its_data_like_training(roads, tmp_path, change, message):
    """The evaluation stage (a real ``monai.bundle run`` of evaluate.yaml) refuses bad test data before it
    evaluates, naming the file or the datalist, and writes no report."""
    bundle = copy_bundle("roads_2d", tmp_path / "bundle")
    data = tmp_path / "data"
    shutil.copytree(roads, data)
    if change in (inf_image, label_255, label_shape):
        named = Path(_rewrite_test_case(data, change)).name
    else:
        _edit_datalist(data, change)
        named = "dataset.json"
    done = run(bundle, ["inference", "evaluate"], "--dataset_dir", str(data), "--patch_size", "[64,64]")
    assert done.returncode != 0
    assert message in done.stderr and named in done.stderr, done.stderr[-2000:]
    assert not list((bundle / "eval").rglob("metrics.csv")) if (bundle / "eval").exists() else True


@pytest.mark.parametrize("content, reason", [(b"", "EOFError"), (b"text, not a checkpoint\n", "UnpicklingError")])
def test_unreadable_weights_are_named(roads, tmp_path, content, reason):
    """An empty or text pretrained.pt, as fine-tuning reads it: the error names the file and the setting."""
    bundle = copy_bundle("roads_2d", tmp_path)
    (bundle / "models/pretrained.pt").write_bytes(content)
    served = (bundle / "models/model.pt").read_bytes()
    done = run(bundle, ["train", "finetune"], "--dataset_dir", str(roads), *ROADS_DATA, "--pretrain_epochs", "1")
    assert done.returncode != 0
    assert "pretrained_path" in done.stderr and "pretrained.pt is not a readable PyTorch checkpoint" in done.stderr
    assert (bundle / "models/model.pt").read_bytes() == served
    with pytest.raises(ValueError, match="pretrained.pt is not a readable PyTorch checkpoint"):
        load_weights(torch.nn.Linear(2, 2), bundle / "models/pretrained.pt", setting="pretrained_path")
