"""The nnU-Net v2 plug-in, run the way its README section runs it on synthetic roads: convert, plan and
preprocess, pretrain and fine-tune with CLoss through nnU-Net's trainer machinery (a few iterations),
predict with both models, post-process, evaluate. Needs the ``nnunet`` extra (the README's test command
installs it; the NumPy 2 command leaves this file out)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip(
    "nnunetv2",
    reason="the nnU-Net extra is not installed: pip install -c constraints.txt -e '.[nnunet]' && pip install -c "
    "constraints.txt --no-deps nnunetv2 dynamic-network-architectures batchgenerators batchgeneratorsv2 acvl-utils",
)

import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402
from monai.losses import DiceCELoss  # noqa: E402
from scipy import ndimage  # noqa: E402

from contextloss_monai.data.synthetic import write_synthetic_dataset  # noqa: E402
from contextloss_monai.losses import ContextLoss  # noqa: E402
from contextloss_monai.method import Method  # noqa: E402
from contextloss_monai.nnunet import TRAINERS, convert_dataset_folder, nnUNetTrainerCLoss, trainer_path  # noqa: E402
from contextloss_monai.nnunet.discovery import find_trainer_class  # noqa: E402

DATASET_ID = 501
SHORT_TRAINERS = '''
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from contextloss_monai.nnunet.trainers import nnUNetTrainerCLoss


class _Short:
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 2, 1


class nnUNetTrainerTestPretrain(_Short, nnUNetTrainer):
    pass


class nnUNetTrainerTestCLoss(_Short, nnUNetTrainerCLoss):
    pass
'''


def nnunet_env(root: Path) -> dict:
    return {
        **os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
        "nnUNet_results": str(root / "results"), "nnUNet_extTrainer": str(root / "trainers"),
        "nnUNet_n_proc_DA": "0", "nnUNet_compile": "f", "OMP_NUM_THREADS": "1",
    }


def run(command: list[str], env: dict, cwd: Path) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def plugin(*args: str) -> list[str]:
    return [sys.executable, "-m", "contextloss_monai.nnunet", *args]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The README's flow once: every test below checks one part of what it wrote."""
    root = tmp_path_factory.mktemp("nnunet")
    (root / "trainers").mkdir()
    (root / "trainers" / "short_trainers.py").write_text(SHORT_TRAINERS)
    env = nnunet_env(root)
    write_synthetic_dataset("roads", root / "data", n_train=5, n_test=2, size=64, seed=3, progress=False)
    raw = convert_dataset_folder(root / "data", root / "raw", DATASET_ID, nnunet_preprocessed=root / "preprocessed")
    planner = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    run([str(planner), "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "--verify_dataset_integrity"], {**env, "nnUNet_n_proc_DA": "1"}, root)
    results = root / "results" / raw.name
    pretrained = results / "nnUNetTrainerTestPretrain__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth"
    logs = {"pretrain": run(plugin("train", str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerTestPretrain", "-device", "cpu"), env, root)}
    logs["finetune"] = run(plugin("train", str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerTestCLoss", "-device", "cpu",
                                  "-pretrained_weights", str(pretrained)), env, root)
    for trainer, out in (("nnUNetTrainerTestPretrain", "pred_pretrained"), ("nnUNetTrainerTestCLoss", "pred_finetuned")):
        run(plugin("predict", "-i", str(raw / "imagesTs"), "-o", str(root / out), "-d", str(DATASET_ID), "-c", "2d", "-f", "0",
                   "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta"), env, root)
    run(plugin("postprocess", "--finetuned", "pred_finetuned", "--pretrained", "pred_pretrained", "--out", "pred_topo"), env, root)
    run(plugin("evaluate", "--pred", "pred_topo", "--labels", str(raw / "labelsTs"), "--out", "eval_topo",
               "--betti-patch-size", "32,32", "--e0gt-patch-size", "32,32"), env, root)
    return {"root": root, "raw": raw, "results": results, "pretrained": pretrained, "logs": logs, "env": env}


def test_conversion_keeps_channels_labels_and_folds(flow):
    raw, root = flow["raw"], flow["root"]
    ours = json.loads((root / "data" / "dataset.json").read_text())
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "red", "1": "green", "2": "blue"} and meta["labels"] == {"background": 0, "road": 1}
    assert meta["numTraining"] == len(ours["training"]) and meta["file_ending"] == ".nii.gz"
    item = ours["training"][0]
    case = Path(item["image"]).name.split(".")[0]
    image = np.asanyarray(nib.load(root / "data" / item["image"]).dataobj)
    for channel in range(3):
        np.testing.assert_array_equal(np.asanyarray(nib.load(raw / "imagesTr" / f"{case}_{channel:04d}.nii.gz").dataobj), image[..., channel])
    np.testing.assert_array_equal(np.asanyarray(nib.load(raw / "labelsTr" / f"{case}.nii.gz").dataobj),
                                  np.asanyarray(nib.load(root / "data" / item["label"]).dataobj))
    splits = json.loads((root / "preprocessed" / raw.name / "splits_final.json").read_text())
    folds = {Path(i["image"]).name.split(".")[0]: i["fold"] for i in ours["training"]}
    assert len(splits) == len(set(folds.values()))
    for k, split in enumerate(splits):
        assert sorted(split["val"]) == sorted(c for c, f in folds.items() if f == k)
        assert sorted(split["train"] + split["val"]) == sorted(folds)
    assert "Using splits from existing split file" in flow["logs"]["pretrain"]  # nnU-Net trained on our folds


def test_bad_conversion_input_is_reported(flow, tmp_path):
    with pytest.raises(ValueError, match="dataset_id"):
        convert_dataset_folder(flow["root"] / "data", tmp_path, 1000)
    with pytest.raises(FileExistsError, match="not empty"):
        convert_dataset_folder(flow["root"] / "data", flow["root"] / "raw", DATASET_ID)
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        convert_dataset_folder(tmp_path, tmp_path / "raw", 7)


def test_closs_finetuning_starts_from_the_pretrained_checkpoint(flow):
    assert "pretrained weights (as data)" in flow["logs"]["finetune"]
    finetuned = flow["results"] / "nnUNetTrainerTestCLoss__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth"
    before = torch.load(flow["pretrained"], map_location="cpu", weights_only=False)
    after = torch.load(finetuned, map_location="cpu", weights_only=False)
    assert after["trainer_name"] == "nnUNetTrainerTestCLoss"
    changed = [k for k in before["network_weights"] if not torch.equal(before["network_weights"][k], after["network_weights"][k])]
    assert changed  # fine-tuning trained the pretrained network


class _Payload:
    """Pickles as a call of ``os.system``: what a malicious checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pretrained_weights_are_loaded_as_data_only(flow, tmp_path):
    """nnU-Net's loader unpickles -pretrained_weights (weights_only=False): through the plug-in's train entry a
    checkpoint that carries code is refused, naming the file, and the code never runs."""
    marker = tmp_path / "payload_ran"
    payload = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": _Payload(marker)}, payload)
    done = subprocess.run(plugin("train", str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerTestCLoss", "-device", "cpu",
                                 "-pretrained_weights", str(payload)),
                          env=nnunet_env(flow["root"]), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert f"-pretrained_weights {payload} is not a checkpoint that loads as data" in done.stderr
    assert not marker.exists(), "the checkpoint's code ran"
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    from contextloss_monai.nnunet.pretrained import load_pretrained_weights

    with pytest.raises(ValueError, match="empty.pth is not a checkpoint"):
        load_pretrained_weights(torch.nn.Linear(2, 2), empty)


def test_trainer_loss_is_context_loss_on_each_deep_supervision_output(flow, monkeypatch):
    """The loss nnU-Net's machinery trains with equals ContextLoss on each output, with nnU-Net's weights."""
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, flow["env"][key])
    folder = flow["root"] / "preprocessed" / flow["raw"].name
    plans = {**json.loads((folder / "nnUNetPlans.json").read_text()), "continue_training": False}  # as nnUNetv2_train passes it
    trainer = nnUNetTrainerCLoss(plans, "2d", 0, json.loads((folder / "dataset.json").read_text()), torch.device("cpu"))
    trainer.initialize()
    assert trainer.num_epochs == 50  # 5 % of nnU-Net's 1000 pretraining epochs
    scales = trainer._get_deep_supervision_scales()
    weights = np.array([1 / 2**i for i in range(len(scales))])
    weights[-1] = 0
    weights /= weights.sum()
    generator = torch.Generator().manual_seed(0)
    shapes = [[int(round(64 * s)) for s in scale] for scale in scales]
    labels = [torch.zeros(2, 1, *shape) for shape in shapes]
    for label in labels:
        label[..., label.shape[-2] // 3, :] = 1  # a road across each output
        label[..., : label.shape[-2] // 2, label.shape[-1] // 2] = 1
    outputs = [torch.randn(2, 2, *shape, generator=generator) + 2 * (2 * l.repeat(1, 2, 1, 1) - 1) * torch.tensor([-1.0, 1.0])[:, None, None]
               for shape, l in zip(shapes, labels)]
    reference = ContextLoss(gamma=0.2, alpha=0.5, include_background=False, to_onehot_y=True, softmax=True)
    expected = sum(w * reference(o, t) for w, o, t in zip(weights, outputs, labels) if w != 0)
    torch.testing.assert_close(trainer.loss(outputs, labels), expected)
    assert not torch.isclose(expected, sum(w * DiceCELoss(include_background=False, to_onehot_y=True, softmax=True)(o, t)
                                           for w, o, t in zip(weights, outputs, labels) if w != 0))


def test_every_trainer_is_found_by_its_name_and_configured_as_the_paper(flow, monkeypatch):
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    monkeypatch.setenv("nnUNet_extTrainer", flow["env"]["nnUNet_extTrainer"])
    for name, cls in TRAINERS.items():
        assert find_trainer_class(name) is cls
        # the nnUNet_extTrainer route: nnU-Net's own lookup in trainer_path() finds the same class
        found = recursive_find_python_class(str(trainer_path()), name, None, base_folder=str(trainer_path()))
        assert found is not None and found.__name__ == name and found.__module__ == cls.__module__
    assert find_trainer_class("nnUNetTrainerTestCLoss").__name__ == "nnUNetTrainerTestCLoss"
    assert find_trainer_class("nnUNetTrainer").__name__ == "nnUNetTrainer"
    assert find_trainer_class("nnUNetTrainer_5epochs").__name__ == "nnUNetTrainer_5epochs"  # nnU-Net's variants, without timm
    with pytest.raises(RuntimeError):
        find_trainer_class("nnUNetTrainerDoesNotExist")
    settings = {name: (cls.loss_name, cls.gamma, cls.alpha) for name, cls in TRAINERS.items() if hasattr(cls, "loss_name")}
    assert settings == {
        "nnUNetTrainerCLoss": ("context", 0.2, 0.5), "nnUNetTrainerCLossGamma01": ("context", 0.1, 0.5),
        "nnUNetTrainerCLossDice": ("context_dice", 0.2, 0.5), "nnUNetTrainerThinCLoss": ("thin_context", 0.2, 0.5),
        "nnUNetTrainerClDice": ("cldice", 0.2, 0.5), "nnUNetTrainerCompoundClDice": ("compound_cldice", 0.2, 0.5),
        "nnUNetTrainerCLoss_1epoch": ("context", 0.2, 0.5), "nnUNetTrainerSkeletonRecall": ("skeleton_recall", 1.0, 0.5),
        "nnUNetTrainerCBDice": ("cbdice", 1.0, 0.5),
    }
    cbdice = Method("cbdice", 1.0).build_loss(iters=TRAINERS["nnUNetTrainerCBDice"].iters, deep_supervision=False).loss
    assert cbdice.cbdice.iters == 10  # the authors' soft-skeleton iterations
    assert {name: round(0.05 * cls.pretraining_epochs) for name, cls in TRAINERS.items()} == {
        name: 1 if name.endswith("_1epoch") else 50 for name in TRAINERS
    }


def test_post_processing_keeps_only_components_that_touch_the_pretrained_prediction(flow):
    root, raw = flow["root"], flow["raw"]
    cases = sorted(p.name for p in (raw / "labelsTs").iterdir())
    assert sorted(p.name for p in (root / "pred_topo").glob("*.nii.gz")) == cases
    for name in cases:
        images = {k: sitk.ReadImage(str(root / k / name)) for k in ("pred_pretrained", "pred_finetuned", "pred_topo")}
        label = sitk.ReadImage(str(raw / "labelsTs" / name))
        topo = images["pred_topo"]
        assert topo.GetSize() == label.GetSize() and topo.GetSpacing() == label.GetSpacing() and topo.GetOrigin() == label.GetOrigin()
        fine, pre, out = (sitk.GetArrayFromImage(images[k]) > 0 for k in ("pred_finetuned", "pred_pretrained", "pred_topo"))
        components, n = ndimage.label(fine, structure=np.ones((3, 3)))
        for c in range(1, n + 1):
            piece = components == c
            assert out[piece].all() == bool((piece & pre).any()) and (out[piece].any() == out[piece].all())
        assert not (out & ~fine).any()


def test_evaluation_writes_the_bundles_report(flow):
    root, raw = flow["root"], flow["raw"]
    with (root / "eval_topo" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == sorted(p.name.split(".")[0] for p in (raw / "labelsTs").iterdir())
    assert set(rows[0]) == {"image", "dice", "cldice", "ags", "e0_gt", "betti_e", "betti_e0", "betti_e1"}
    summary = json.loads((root / "eval_topo" / "summary.json").read_text())
    assert summary["n_images"] == len(rows)
    for metric in ("dice", "betti_e"):
        values = [float(r[metric]) for r in rows]
        assert summary["metrics"][metric]["mean"] == pytest.approx(float(np.mean(values)), rel=1e-5)
    for row in rows:
        assert float(row["betti_e"]) == pytest.approx(float(row["betti_e0"]) + float(row["betti_e1"]), rel=1e-5)
        assert 0 <= float(row["dice"]) <= 1


def test_the_rest_of_the_package_never_imports_nnunet():
    code = ("import sys, contextloss_monai, contextloss_monai.losses, contextloss_monai.metrics, contextloss_monai.bundle, "
            "contextloss_monai.experiment, contextloss_monai.handlers, contextloss_monai.transforms, contextloss_monai.data; "
            "sys.exit(int(any(m.startswith(('nnunetv2', 'contextloss_monai.nnunet')) for m in sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
