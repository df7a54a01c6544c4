"""``contextloss bundle new``: a bundle of its own for a dataset folder, rendered from the one template with values
read from the data, passing the checks of the shipped bundles and running every stage from its own folder."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml

from contextloss_monai.bundle.new import dataset_bundle_values, new_bundle
from contextloss_monai.cli import main
from contextloss_monai.data.prepare import prepare_folder
from contextloss_monai.data.synthetic import write_synthetic_dataset
from test_bundle_metadata import metadata_problems
from test_bundles import export_bundle, run_bundle


def _grey_dataset(root: Path, shape=(40, 52), n=7) -> Path:
    """16-bit grey pictures (values up to ~20000) with lines, converted by the generic converter."""
    rng = np.random.default_rng(0)
    for folder in ("img", "lab"):
        (root / folder).mkdir(parents=True)
    for i in range(n):
        label = np.zeros(shape, np.uint8)
        label[(8 + 3 * i) % shape[0]] = 1
        label[:, shape[1] // 2] = 1
        iio.imwrite(root / "img" / f"c{i}.png", (rng.random(shape) * 6000 + label.astype(np.float64) * 14000).astype(np.uint16))
        iio.imwrite(root / "lab" / f"c{i}.png", label * 255)
    prepare_folder(root / "img", root / "lab", root / "data", test_ids=["c5", "c6"], n_folds=2, structure="line", progress=False)
    return root / "data"


def _check_workflows(bundle: Path, dataset: Path, tmp_path: Path) -> None:
    from monai.bundle import ConfigParser, ConfigWorkflow

    configs = bundle / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "train.yaml"))
    weights = tmp_path / "random.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), weights)
    for files, kind in ((["train.yaml"], "train"), (["train.yaml", "finetune.yaml"], "train"), (["inference.yaml"], "infer")):
        workflow = ConfigWorkflow(config_file=[str(configs / f) for f in files], meta_file=str(configs / "metadata.json"),
                                  logging_file=str(configs / "logging.conf"), workflow_type=kind, pretrained_path=str(weights),
                                  model_path=str(weights))
        workflow.initialize()
        assert not workflow.check_properties(), (files, workflow.check_properties())
    metadata = json.loads((configs / "metadata.json").read_text())
    assert metadata_problems(metadata, yaml.safe_load((configs / "train.yaml").read_text())["network_def"]) == []


def _run_every_stage(bundle: Path) -> dict:
    """pretrain -> fine-tune -> Algorithm 2 inference -> evaluate, from the bundle's folder with its own dataset_dir."""
    run_bundle(bundle, ["train"], "--pretrain_epochs", "2", "--val_interval", "1")
    done = run_bundle(bundle, ["train", "finetune"], "--pretrain_epochs", "2")
    assert "finetune_context_g0.2 epoch 1/1" in done.stdout + done.stderr
    run_bundle(bundle, ["inference", "inference_topo", "evaluate"])
    return json.loads((bundle / "eval/topo/summary.json").read_text())


def test_a_2d_bundle_from_grey_pictures_passes_the_checks_and_runs_every_stage(tmp_path, capsys):
    dataset = _grey_dataset(tmp_path / "src")
    assert main(["bundle", "new", "lines_2d", "--data", str(dataset), "--out", str(tmp_path / "bundles")]) == 0
    bundle = tmp_path / "bundles" / "lines_2d"
    assert str(bundle) in capsys.readouterr().out
    train = yaml.safe_load((bundle / "configs/train.yaml").read_text())
    assert train["dataset_dir"] == str(dataset.absolute()) and train["synthetic_kind"] is None  # its data, no synthetic default
    assert train["network_def"]["in_channels"] == 1 and train["network_def"]["spatial_dims"] == 2
    assert train["patch_size"] == [32, 32]  # the smallest image 40 x 52, multiples of the stride 16, square
    scale = next(t for t in train["preprocessing_transforms"] if t["_target_"] == "ScaleIntensityRanged")
    stored = np.asanyarray(__import__("nibabel").load(dataset / json.loads((dataset / "dataset.json").read_text())["training"][0]["image"]).dataobj)
    assert scale["a_min"] <= stored.min() and scale["a_max"] >= stored.max() > 255  # the data's range, not 0..255
    inference = yaml.safe_load((bundle / "configs/inference.yaml").read_text())
    served = next(t for t in inference["preprocessing"]["transforms"] if t["_target_"] == "ScaleIntensityRanged")
    assert (served["a_min"], served["a_max"]) == (scale["a_min"], scale["a_max"])  # inference scales as training did
    evaluate = yaml.safe_load((bundle / "configs/evaluate.yaml").read_text())
    assert evaluate["betti_patch_size"] == [16, 16]  # a quarter of the smallest image, at least 16
    metadata = json.loads((bundle / "configs/metadata.json").read_text())
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"]["1"] == "line" and "synthetic" not in metadata["data_source"]
    card = (bundle / "docs/README.md").read_text()
    assert "## Results" not in card and "paper's figures" not in card and str(dataset.absolute()) in card  # no borrowed numbers
    _check_workflows(bundle, dataset, tmp_path)
    summary = _run_every_stage(bundle)
    assert summary["n_images"] == 2 and 0 <= summary["metrics"]["dice"]["mean"] <= 1
    export_bundle(bundle, [1, 1, 32, 32])


def test_a_3d_bundle_from_two_channel_volumes(tmp_path):
    dataset = tmp_path / "vessels"
    write_synthetic_dataset("vessels3d", dataset, n_train=5, n_test=1, size=32, seed=2, progress=False)
    bundle = new_bundle("vessels_mine", dataset, tmp_path)
    train = yaml.safe_load((bundle / "configs/train.yaml").read_text())
    assert train["network_def"]["in_channels"] == 2 and train["network_def"]["spatial_dims"] == 3
    assert train["patch_size"] == [32, 32, 16]  # the volumes are 32 x 32 x 16: the like bundle's 64 x 64 x 32 shrunk
    assert yaml.safe_load((bundle / "configs/evaluate.yaml").read_text())["betti_patch_size"] is None  # whole volumes
    _check_workflows(bundle, dataset, tmp_path)
    summary = _run_every_stage(bundle)
    assert summary["n_images"] == 1
    export_bundle(bundle, [1, 2, 32, 32, 16])


def test_refusals_name_the_problem(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="has no dataset.json"):
        dataset_bundle_values("x", tmp_path)
    assert main(["bundle", "new", "x", "--data", str(tmp_path / "none")]) == 2
    assert "has no dataset.json" in capsys.readouterr().err
    dataset = tmp_path / "roads"
    write_synthetic_dataset("roads", dataset, n_train=5, n_test=1, size=32, seed=0, progress=False)
    with pytest.raises(ValueError, match="like bundle vessap_3d is 3D but the dataset's labels are 2D"):
        dataset_bundle_values("x", dataset, like="vessap_3d")
    with pytest.raises(ValueError, match="like must be one of"):
        dataset_bundle_values("x", dataset, like="roads_3d")
    with pytest.raises(ValueError, match="name"):
        new_bundle("../escape", dataset, tmp_path)
    new_bundle("mine", dataset, tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        new_bundle("mine", dataset, tmp_path)
    assert new_bundle("mine", dataset, tmp_path, overwrite=True).is_dir()
    tiny = _grey_dataset(tmp_path / "tiny", shape=(12, 40))
    with pytest.raises(ValueError, match=r"the smallest image is \[12, 40\], smaller than the network's stride \[16, 16\]"):
        dataset_bundle_values("x", tiny)


def test_benchmark_runs_a_bundle_of_your_own_on_its_own_dataset(tmp_path):
    from contextloss_monai.experiment.benchmark import benchmark_data

    dataset = tmp_path / "roads"
    write_synthetic_dataset("roads", dataset, n_train=5, n_test=1, size=32, seed=0, progress=False)
    own = new_bundle("mine", dataset, tmp_path)
    out = tmp_path / "out"
    assert benchmark_data(own, None, out).resolve() == dataset.resolve()  # no synthetic kind: the dataset it was made from
    assert benchmark_data(own, str(tmp_path / "other"), out) == tmp_path / "other"  # --data wins
    shipped = Path(__file__).resolve().parents[1] / "bundles" / "roads_2d"
    assert benchmark_data(shipped, None, out) == out / "data"  # synthetic data, generated there
    (dataset / "dataset.json").rename(dataset / "moved.json")
    with pytest.raises(FileNotFoundError, match="pass --data DIR"):
        benchmark_data(own, None, out)
