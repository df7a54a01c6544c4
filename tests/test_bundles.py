"""The four bundles, run the way users run them: ``python -m monai.bundle run`` in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import requires_cuda

from contextloss_monai.data.synthetic import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
# bundle -> (synthetic kind, tiny size, patch size override, network input shape for export)
BUNDLES = {
    "roads_2d": ("roads", 64, "[64,64]", [1, 3, 64, 64]),
    "hrf_retina_2d": ("retina", 64, "[64,64]", [1, 3, 64, 64]),
    "vessap_3d": ("vessels3d", 32, "[32,32,16]", [1, 2, 32, 32, 16]),
    "cement_lines_3d": ("sheets3d", 32, "[32,32,16]", [1, 1, 32, 32, 16]),
}
# the tiny cement-line volumes are smaller than the bundle's synthetic-default metric tiles
EVAL_OVERRIDES = {"cement_lines_3d": ["--e0gt_patch_size", "[32,32,8]", "--skeleton_patch_size", "[32,32,8]"]}
METRICS = ("dice", "cldice", "ags", "e0_gt", "betti_e", "betti_e0", "betti_e1")


def run_bundle(
    bundle_dir: Path, configs: list[str], *overrides: str, torchrun: bool = False, nproc: int = 2, expect_ok: bool = True
):
    config = "[" + ",".join(f"'configs/{c}.yaml'" for c in configs) + "]"
    # --standalone: a rendezvous on a free local port, so bundle tests running side by side (pytest -n) never share 29500
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if torchrun else [sys.executable]
    command = launcher + ["-m", "monai.bundle", "run", "--config_file", config, *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=bundle_dir, capture_output=True, text=True, env=env, timeout=600)
    if expect_ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def export_bundle(bundle_dir: Path, input_shape: list[int]) -> None:
    """``models/model.pt`` to TorchScript (traced: DynUNet with deep supervision does not script) and ONNX."""
    common = ["--ckpt_file", "models/model.pt", "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.yaml",
              "--input_shape", json.dumps(input_shape).replace(" ", "")]
    for command in (["ckpt_export", "network_def", "--filepath", "models/model.ts", "--use_trace", "true"],
                    ["onnx_export", "network_def", "--filepath", "models/model.onnx"]):
        done = subprocess.run([sys.executable, "-m", "monai.bundle", *command, *common], cwd=bundle_dir, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    out = {}
    for name, (kind, size, _, _) in BUNDLES.items():
        folder = tmp_path_factory.mktemp(name) / "data"
        write_synthetic_dataset(kind, folder, n_train=5, n_test=2, size=size, seed=3, progress=False)
        out[name] = folder
    return out


def copy_bundle(name: str, destination: Path) -> Path:
    target = destination / name
    shutil.copytree(ROOT / "bundles" / name, target, ignore=shutil.ignore_patterns("data", "logs", "eval", "*.pt", "*.ts"))
    return target


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_workflow_properties(name, datasets, tmp_path):
    from monai.bundle import ConfigParser, ConfigWorkflow

    configs = ROOT / "bundles" / name / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "train.yaml"))
    weights = tmp_path / "random.pt"  # random weights of the bundle's own network: what fine-tuning and inference load
    torch.save(parser.get_parsed_content("network_def").state_dict(), weights)
    for files, kind in ((["train.yaml"], "train"), (["train.yaml", "finetune.yaml"], "train"), (["inference.yaml"], "infer")):
        workflow = ConfigWorkflow(
            config_file=[str(configs / f) for f in files], meta_file=str(configs / "metadata.json"),
            logging_file=str(configs / "logging.conf"), workflow_type=kind, dataset_dir=str(datasets[name]),
            pretrained_path=str(weights), model_path=str(weights),
        )
        workflow.initialize()
        assert not workflow.check_properties(), (files, workflow.check_properties())


def _check_labels_outside_do_not_count(bundle: Path, dataset: Path, data: list[str], summary: dict) -> None:
    """The same evaluation on a copy of the dataset whose test labels are inverted outside the field of view
    gives the same metrics, image by image."""
    inverted = dataset.parent / "inverted_outside"
    shutil.copytree(dataset, inverted, ignore=shutil.ignore_patterns(".cache"))
    for item in json.loads((dataset / "dataset.json").read_text())["test"]:
        label = nib.load(dataset / item["label"])
        inside = np.asanyarray(nib.load(dataset / item["mask"]).dataobj) > 0
        values = np.asanyarray(label.dataobj)
        nib.save(nib.Nifti1Image(np.where(inside, values, 1 - values).astype(np.uint8), label.affine), str(inverted / item["label"]))
    overrides = [*data[2:], "--dataset_dir", str(inverted), "--evaluation_name", "inverted"]
    run_bundle(bundle, ["inference", "inference_topo", "evaluate"], *overrides)
    again = json.loads((bundle / "eval/inverted/summary.json").read_text())
    assert again["metrics"] == summary["metrics"]
    shutil.rmtree(inverted)


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_all_stages(name, datasets, tmp_path):
    """pretrain -> fine-tune -> inference (one model, Algorithm 2) -> evaluate -> TorchScript / ONNX export."""
    bundle = copy_bundle(name, tmp_path)
    data = ["--dataset_dir", str(datasets[name]), "--patch_size", BUNDLES[name][2]]
    run_bundle(bundle, ["train"], *data, "--pretrain_epochs", "2", "--val_interval", "1")
    assert (bundle / "models/pretrained.pt").is_file()
    with (bundle / "logs/pretrain/training_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(0 <= float(r["val_mean_dice"]) <= 1 for r in rows)

    done = run_bundle(bundle, ["train", "finetune"], *data, "--pretrain_epochs", "2")
    assert "finetune_context_g0.2 epoch 1/1" in done.stdout + done.stderr  # 5 % of 2 epochs, at least 1
    assert (bundle / "models/model.pt").is_file()
    pretrained, finetuned = (torch.load(bundle / f"models/{m}.pt") for m in ("pretrained", "model"))
    assert any(not torch.equal(pretrained[k], finetuned[k]) for k in pretrained)

    run_bundle(bundle, ["inference"], *data)
    run_bundle(bundle, ["inference", "inference_topo"], *data)
    test_items = json.loads((datasets[name] / "dataset.json").read_text())["test"]
    for item in test_items:
        case = Path(item["image"]).name.split(".")[0]
        source = nib.load(datasets[name] / item["label"])
        single = nib.load(bundle / f"eval/predictions/{case}_seg.nii.gz")
        topo = nib.load(bundle / f"eval/predictions_topo/{case}_seg.nii.gz")
        assert single.shape == source.shape == topo.shape
        np.testing.assert_allclose(single.affine, source.affine)
        single_mask, topo_mask = np.asanyarray(single.dataobj), np.asanyarray(topo.dataobj)
        assert set(np.unique(single_mask)) <= {0, 1} and set(np.unique(topo_mask)) <= {0, 1}
        assert not (topo_mask > single_mask).any()  # Algorithm 2 only removes fine-tuned components
        if "mask" in item:  # the field of view: background outside, with both models
            outside = np.asanyarray(nib.load(datasets[name] / item["mask"]).dataobj) == 0
            assert outside.any() and not single_mask[outside].any() and not topo_mask[outside].any()

    run_bundle(bundle, ["inference", "inference_topo", "evaluate"], *data, *EVAL_OVERRIDES.get(name, []))
    summary = json.loads((bundle / "eval/topo/summary.json").read_text())
    assert summary["n_images"] == len(test_items)
    for metric in METRICS:
        assert metric in summary["metrics"]
    assert 0 <= summary["metrics"]["dice"]["mean"] <= 1
    with (bundle / "eval/topo/metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(test_items) and set(METRICS) <= set(rows[0])
    if all("mask" in item for item in test_items):
        _check_labels_outside_do_not_count(bundle, datasets[name], data, summary)

    # exports: TorchScript and ONNX, same output as eager
    shape = BUNDLES[name][3]
    export_bundle(bundle, shape)
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs/inference.yaml"))
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models/model.pt"))
    network.eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        eager = network(x)
        traced = torch.jit.load(str(bundle / "models/model.ts"))(x)
    torch.testing.assert_close(traced, eager, rtol=1e-4, atol=1e-4)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(bundle / "models/model.onnx"))
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, eager.numpy(), rtol=1e-3, atol=1e-3)


def test_training_is_counted_in_optimizer_steps(datasets, tmp_path):
    """iterations_per_epoch fixes an epoch's steps (nnU-Net's 250), finetune_steps the fine-tuning length in steps
    (rounded up to whole epochs), and pretraining may stop early on a validation Dice plateau."""
    bundle = copy_bundle("roads_2d", tmp_path)
    data = ["--dataset_dir", str(datasets["roads_2d"]), "--patch_size", "[64,64]", "--iterations_per_epoch", "3"]
    run_bundle(bundle, ["train"], *data, "--pretrain_epochs", "4", "--val_interval", "1", "--pretrain_patience", "1")
    with (bundle / "logs/pretrain/training_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert 2 <= len(rows) <= 4 and [int(r["steps"]) for r in rows] == [3 * int(r["epoch"]) for r in rows]
    done = run_bundle(bundle, ["train", "finetune"], *data, "--pretrain_epochs", "4", "--finetune_steps", "5",
                      "--pretrain_patience", "1")  # the pretraining's patience does not cut the fine-tuning short
    assert "finetune_context_g0.2 epoch 2/2" in done.stdout + done.stderr
    with (bundle / "logs/finetune_context_g0.2/training_log.csv").open() as handle:
        assert [int(r["steps"]) for r in csv.DictReader(handle)] == [3, 6]


def test_resume_continues_the_epoch_count(datasets, tmp_path):
    bundle = copy_bundle("roads_2d", tmp_path)
    data = ["--dataset_dir", str(datasets["roads_2d"]), "--patch_size", "[64,64]", "--val_interval", "5"]
    run_bundle(bundle, ["train"], *data, "--pretrain_epochs", "1")  # "interrupted" after epoch 1 of 2
    done = run_bundle(bundle, ["train"], *data, "--pretrain_epochs", "2", "--resume", "true")
    assert "resume: loading" in done.stdout + done.stderr
    with (bundle / "logs/pretrain/training_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]  # the resumed run trained epoch 2 only
    assert float(rows[1]["lr"]) > 0  # the schedule stretched to 2 epochs, not left at the 1-epoch run's end (0)


@pytest.mark.parametrize("name", ["roads_2d", "vessap_3d"])
def test_torchrun_two_processes_on_cpu(name, datasets, tmp_path):
    bundle = copy_bundle(name, tmp_path)
    run_bundle(bundle, ["train", "multi_gpu_train"], "--dataset_dir", str(datasets[name]), "--patch_size", BUNDLES[name][2],
               "--pretrain_epochs", "1", "--val_interval", "1", torchrun=True)
    assert (bundle / "models/pretrained.pt").is_file()
    with (bundle / "logs/pretrain/training_log.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 1  # one row: only rank 0 logs


def test_multi_gpu_evaluate_matches_one_process(datasets, tmp_path):
    """multi_gpu_evaluate.yaml with 2 gloo processes: every test image evaluated once, the same summary as one process."""
    from conftest import copy_bundle as copy_bundle_with_weights

    bundle = copy_bundle_with_weights("roads_2d", tmp_path)  # random weights in models/model.pt
    data = ["--dataset_dir", str(datasets["roads_2d"]), "--patch_size", "[64,64]"]
    run_bundle(bundle, ["inference", "evaluate"], *data, "--evaluation_name", "single")
    run_bundle(bundle, ["inference", "evaluate", "multi_gpu_evaluate"], *data, "--evaluation_name", "sharded", torchrun=True)
    single, sharded = (json.loads((bundle / f"eval/{n}/summary.json").read_text()) for n in ("single", "sharded"))
    assert sharded["n_images"] == single["n_images"] == 2
    for metric, values in single["metrics"].items():
        assert sharded["metrics"][metric]["count"] == values["count"]
        if values["mean"] is not None:
            assert sharded["metrics"][metric]["mean"] == pytest.approx(values["mean"], rel=1e-6, abs=1e-9), metric
    with (bundle / "eval/sharded/metrics.csv").open() as handle:
        assert sorted(r["image"] for r in csv.DictReader(handle)) == ["roads_005", "roads_006"]


def test_torchrun_two_nodes_on_loopback(datasets, tmp_path):
    """The model cards' multi-node command, as two "nodes" of one process each on 127.0.0.1 with gloo."""
    import socket

    bundle = copy_bundle("roads_2d", tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = "['configs/train.yaml','configs/multi_gpu_train.yaml']"
    overrides = ["--dataset_dir", str(datasets["roads_2d"]), "--patch_size", "[64,64]", "--pretrain_epochs", "1", "--val_interval", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
             "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "monai.bundle", "run", "--config_file", config, *overrides],
            cwd=bundle, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert (bundle / "models/pretrained.pt").is_file()
    with (bundle / "logs/pretrain/training_log.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 1  # one row: only the global rank 0 logs


@requires_cuda
@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_every_stage_on_cuda(name, datasets, tmp_path):
    """One epoch of each stage on the GPU (mixed precision by default), every fine-tuning loss."""
    bundle = copy_bundle(name, tmp_path)
    data = ["--dataset_dir", str(datasets[name]), "--patch_size", BUNDLES[name][2], "--device", "$torch.device('cuda:0')"]
    run_bundle(bundle, ["train"], *data, "--pretrain_epochs", "1", "--val_interval", "1")
    for loss_name in ("dice_ce", "cldice", "compound_cldice", "context", "context_dice", "thin_context", "skeleton_recall", "cbdice"):
        run_bundle(bundle, ["train", "finetune"], *data, "--pretrain_epochs", "1", "--loss_name", loss_name)
    run_bundle(bundle, ["inference", "inference_topo", "evaluate"], *data, *EVAL_OVERRIDES.get(name, []))
    assert json.loads((bundle / "eval/topo/summary.json").read_text())["metrics"]["dice"]["mean"] is not None
    weights = torch.load(bundle / "models/model.pt", weights_only=True)  # no map_location: saved devices kept
    assert all(t.device.type == "cpu" for t in weights.values())  # a GPU-trained model loads on any machine
    # DDP with NCCL, one process per GPU of this machine (torchrun's default multi-GPU path)
    run_bundle(bundle, ["train", "multi_gpu_train"], *data[:-2], "--pretrain_epochs", "1", torchrun=True,
               nproc=torch.cuda.device_count())
    export_bundle(bundle, BUNDLES[name][3])


@pytest.mark.parametrize("name", ["hrf_retina_2d", "vessap_3d"])
def test_skeleton_recall_fine_tunes_with_the_tube_from_the_pipeline(name, datasets, tmp_path):
    """--loss_name skeleton_recall: the tube made by the training pipeline (with the field of view on the retina, in
    3D on the vessels, there with each deep-supervision head's loss at its own resolution: label and tube downsampled
    together) reaches the loss through MONAI's trainer; the model changes and is named by its method."""
    bundle = copy_bundle(name, tmp_path)
    data = ["--dataset_dir", str(datasets[name]), "--patch_size", BUNDLES[name][2]]
    resolution = ["--deep_supervision_resolution", "own" if name == "vessap_3d" else "full"]
    run_bundle(bundle, ["train"], *data, *resolution, "--pretrain_epochs", "1")
    run_bundle(bundle, ["train", "finetune"], *data, *resolution, "--pretrain_epochs", "1", "--loss_name", "skeleton_recall",
               "--gamma", "1", "--model_per_method", "true")
    pretrained, finetuned = (torch.load(bundle / f"models/{m}.pt") for m in ("pretrained", "model_skeleton_recall_g1"))
    assert any(not torch.equal(pretrained[k], finetuned[k]) for k in pretrained)
    with (bundle / "logs/finetune_skeleton_recall_g1/training_log.csv").open() as handle:
        assert all(np.isfinite(float(row["loss"])) for row in csv.DictReader(handle))


def _failure(name: str, configs: list[str], **overrides) -> str:
    """Build the trainer in-process and return the error chain's messages (the bundle must fail before training)."""
    from monai.bundle import ConfigWorkflow

    folder = ROOT / "bundles" / name / "configs"
    workflow = ConfigWorkflow(config_file=[str(folder / f"{c}.yaml") for c in configs], workflow_type="train", **overrides)
    with pytest.raises(Exception) as info:
        workflow.initialize()
        workflow.parser.get_parsed_content("train#trainer")
    messages, error = [], info.value
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


def test_bad_settings_fail_before_training(datasets, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "dataset_dir" in _failure("roads_2d", ["train"], dataset_dir=str(empty)) and "dataset.json" in _failure(
        "roads_2d", ["train"], dataset_dir=str(empty)
    )
    broken = tmp_path / "broken"
    shutil.copytree(datasets["roads_2d"], broken)
    next((broken / "imagesTr").iterdir()).unlink()
    assert "names a missing image file" in _failure("roads_2d", ["train"], dataset_dir=str(broken))
    assert "loss_name must be one of" in _failure("roads_2d", ["train"], dataset_dir=str(datasets["roads_2d"]), loss_name="dice")
    # a checkpoint of another architecture (the 3D vessel network) as the 2D roads bundle's pretrained model
    from monai.networks.nets import DynUNet

    other = DynUNet(3, 2, 2, [[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]], [[2, 2, 2]] * 2)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    message = _failure("roads_2d", ["train", "finetune"], dataset_dir=str(datasets["roads_2d"]), pretrained_path=str(tmp_path / "other.pt"))
    assert "pretrained_path" in message and "does not fit the bundle's network_def" in message
