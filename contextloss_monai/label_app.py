"""Serving the bundles through MONAI Label: an infer task and a two-stage train task per bundle, and the app.

MONAI Label (``monailabel``) is an optional extra (see the README, "Serving with MONAI Label"); import
this module only where it is installed. The app in ``apps/contextloss_label/main.py`` exposes
:class:`ContextLossLabelApp`; start it with::

    python -m monailabel.main start_server --app apps/contextloss_label --studies STUDIES \\
        --conf bundles_dir bundles --conf models roads_2d,vessap_3d

Why not the stock ``monaibundle`` sample app: its ``BundleInferTask`` imports
``monailabel.transform.post``, which imports ``torchvision`` at module level (there is no CPU build of
torchvision for this project's torch), it skips a bundle that fails to load with only a warning, and its
training runs ``train`` alone (no CLoss fine-tuning). The tasks here build on ``BasicInferTask`` and
``BundleTrainTask``, read the same bundle files (``configs/inference.yaml``: ``network_def``,
``preprocessing``, ``inferer``; ``configs/metadata.json``: labels and dimension; ``models/model.pt``)
and raise at start-up when a bundle cannot serve.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import monai.bundle
import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.transforms import Compose, SqueezeDimd
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

from contextloss_monai import __version__
from contextloss_monai.bundle.weights import load_weights
from contextloss_monai.utils import to_numpy

__all__ = ["BundleSegmentationInfer", "BundleTwoStageTrain", "ContextLossLabelApp", "find_bundles"]

logger = logging.getLogger(__name__)


def _require_configs(bundle_dir: Path, *config_names: str) -> None:
    """Raise ``FileNotFoundError`` naming the first of ``configs/<name>`` missing from the bundle."""
    for name in config_names:
        if not (bundle_dir / "configs" / name).is_file():
            raise FileNotFoundError(f"bundle {bundle_dir} has no configs/{name}; is it a MONAI bundle folder?")


def _read_bundle(bundle_dir: Path, config_name: str) -> tuple[ConfigParser, dict]:
    """The bundle's config (with ``bundle_root`` set to ``bundle_dir``) and its metadata."""
    _require_configs(bundle_dir, config_name, "metadata.json")
    config_file = bundle_dir / "configs" / config_name
    metadata_file = bundle_dir / "configs" / "metadata.json"
    parser = ConfigParser()
    parser.read_meta(str(metadata_file))
    parser.read_config(str(config_file))
    parser["bundle_root"] = str(bundle_dir)
    return parser, json.loads(metadata_file.read_text())


def find_bundles(bundles_dir: str | os.PathLike, models: str | Sequence[str] = "all") -> list[Path]:
    """The bundle folders to serve.

    Args:
        bundles_dir: folder holding one sub-folder per bundle (the repository's ``bundles/``, or where
            ``monai.bundle download`` put them).
        models: ``"all"`` (every sub-folder with ``configs/metadata.json``) or bundle names, as a
            sequence or one comma-separated string (MONAI Label's ``--conf models a,b``).

    Raises:
        FileNotFoundError: when ``bundles_dir`` or a named bundle does not exist.
        ValueError: when no bundle is found.
    """
    root = Path(bundles_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"bundles_dir {root} is not a folder; pass --conf bundles_dir DIR (a folder of bundles).")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if list(models) in ([], ["all"]):
        found = sorted(p for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())
        if not found:
            raise ValueError(f"bundles_dir {root} holds no bundle (no */configs/metadata.json).")
        return found
    missing = [m for m in models if not (root / m).is_dir()]
    if missing:
        available = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"models {missing} not found in bundles_dir {root}; available: {available}.")
    return [root / m for m in models]


class BundleSegmentationInfer(BasicInferTask):
    """MONAI Label segmentation task running a bundle's ``configs/inference.yaml`` model.

    Pre-processing, sliding-window inferer and network come from the bundle (``preprocessing``,
    ``inferer``, ``network_def`` + ``model_path``), the label names from ``metadata.json``'s output
    ``channel_def`` (background excluded) and the dimension from the input's ``spatial_shape``. The
    prediction is the bundle's ``prediction_transforms`` (softmax, argmax) squeezed to the input's
    spatial shape ``(H, W)`` or ``(H, W, D)``, written as NIfTI (``uint8``, 0 = background) with the
    input image's affine. The weights are loaded (strictly) when the task is built, so a bundle without
    or with mismatching ``models/model.pt`` fails at server start-up instead of at the first request.

    Args:
        bundle_dir: the bundle folder.
        config_name: inference config in ``configs/``.
        preload: build the network on every device at start-up (MONAI Label's ``preload``).

    Raises:
        FileNotFoundError: missing config, metadata or model file.
        ValueError: weights that do not fit ``network_def``, or metadata without output labels.
    """

    def __init__(self, bundle_dir: str | os.PathLike, config_name: str = "inference.yaml", preload: bool = False) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        self.bundle_config, metadata = _read_bundle(self.bundle_dir, config_name)
        model_path = Path(self.bundle_config.get_parsed_content("model_path"))
        network = load_weights(self.bundle_config.get_parsed_content("network_def"), model_path, setting=f"{self.bundle_dir.name}: model_path")

        data_format = metadata["network_data_format"]
        image_format = next(iter(data_format["inputs"].values()))
        pred_format = next(iter(data_format["outputs"].values()))
        labels = {name: int(index) for index, name in pred_format.get("channel_def", {}).items() if name.lower() != "background"}
        if not labels:
            raise ValueError(f"bundle {self.bundle_dir}: metadata.json's output channel_def names no foreground label.")
        self.version = metadata.get("version")
        super().__init__(
            path=str(model_path),
            network=network,
            type=InferType.SEGMENTATION,
            labels=labels,
            dimension=len(image_format["spatial_shape"]),
            description=metadata.get("description", self.bundle_dir.name),
            load_strict=True,
            preload=preload,
        )
        self._config["model_filename"] = model_path.name

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self.version}

    def pre_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        preprocessing = self.bundle_config.get_parsed_content("preprocessing", instantiate=True)
        return list(preprocessing.transforms) if isinstance(preprocessing, Compose) else list(preprocessing)

    def inferer(self, data: dict | None = None) -> Inferer:
        return self.bundle_config.get_parsed_content("inferer", instantiate=True)

    def post_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        prediction = self.bundle_config.get_parsed_content("prediction_transforms", instantiate=True)
        return [*prediction, SqueezeDimd(keys=self.output_label_key, dim=0)]

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[str, dict]:
        """Write the label map as NIfTI with the input image's affine; return its path and the result JSON."""
        pred = data[self.output_label_key]
        image = data[self.input_key]
        affine = image.meta.get("original_affine", image.affine) if isinstance(image, MetaTensor) else None
        if affine is None:
            raise ValueError(f"{self.bundle_dir.name}: the pre-processed '{self.input_key}' carries no affine to write the label with.")
        affine = np.asarray(affine, dtype=np.float64)
        label = to_numpy(pred).astype(np.uint8)
        with tempfile.NamedTemporaryFile(suffix=extension or ".nii.gz", delete=False) as handle:
            output_file = handle.name
        # nibabel directly: the label is already on the input's grid, and MONAI's NibabelWriter would
        # resample a 2D label whose RGB image was stored as a (H, W, 3) volume with a 4 x 4 affine
        nib.save(nib.Nifti1Image(label, affine), output_file)
        return output_file, dict(data.get(self.output_json_key, {}))


class BundleTwoStageTrain(BundleTrainTask):
    """MONAI Label training through the bundle's configs: pretraining, then CLoss fine-tuning.

    MONAI Label's ``BundleTrainTask`` runs ``configs/train.yaml`` on the datastore's labelled images
    (``train#dataset#data`` / ``validate#dataset#data`` overrides, ``val_split`` of them for validation).
    This task runs the same overrides through both stages of the bundle, as ``python -m monai.bundle
    run`` does: ``train.yaml`` (Dice & CE, writes ``models/pretrained.pt``), then ``train.yaml`` +
    ``finetune.yaml`` (ContextLoss, writes ``models/model.pt``, which the infer task reloads).
    The request's ``max_epochs`` sets the pretraining epochs (``pretrain_epochs``); fine-tuning runs the
    bundle's fraction of them. ``pretrained`` (default true) starts pretraining from the current
    ``models/pretrained.pt`` when it exists.
    """

    def __init__(self, bundle_dir: str | os.PathLike, conf: dict[str, str] | None = None) -> None:
        bundle_dir = Path(bundle_dir).resolve()
        _require_configs(bundle_dir, "train.yaml", "finetune.yaml", "metadata.json")
        super().__init__(str(bundle_dir), conf or {}, load_strict=True)
        if not self.valid:
            raise ValueError(f"bundle {bundle_dir}: MONAI Label could not read configs/train.yaml.")

    def config(self) -> dict[str, Any]:
        options = super().config()
        options.update(max_epochs=int(self.bundle_config.get("pretrain_epochs", 30)), multi_gpu=False)
        options.pop("model_filename", None)  # pretraining always starts from models/pretrained.pt (if any)
        return options

    def _load_checkpoint(self, model_pytorch: str, pretrained: bool, train_handlers: list) -> None:
        pretrained_path = os.path.join(self.bundle_path, "models", "pretrained.pt")
        super()._load_checkpoint(pretrained_path, pretrained, train_handlers)

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        overrides["pretrain_epochs"] = overrides.pop(self.const.key_train_trainer_max_epochs())
        # the datastore supplies the data lists: skip the bundle's dataset_dir check (and its synthetic data)
        overrides["initialize"] = ["$monai.utils.set_determinism(seed=@seed)"]
        return overrides

    def run_single_gpu(self, request: dict, overrides: dict[str, Any]) -> None:
        configs = os.path.join(self.bundle_path, "configs")
        common = {"meta_file": self.bundle_metadata_path, "logging_file": os.path.join(configs, "logging.conf")}
        logger.info(f"{Path(self.bundle_path).name}: pretraining ({overrides['pretrain_epochs']} epochs)")
        monai.bundle.run(config_file=os.path.join(configs, "train.yaml"), **common, **overrides)
        finetune_overrides = {k: v for k, v in overrides.items() if k != self.const.key_train_handlers()}
        logger.info(f"{Path(self.bundle_path).name}: CLoss fine-tuning from models/pretrained.pt")
        monai.bundle.run(config_file=[os.path.join(configs, "train.yaml"), os.path.join(configs, "finetune.yaml")], **common, **finetune_overrides)

    def __call__(self, request: dict, datastore: Datastore) -> dict:
        if not [d for d in datastore.datalist() if d]:
            raise ValueError(f"{Path(self.bundle_path).name}: the datastore has no labelled image to train on; save labels first.")
        return super().__call__({**request, "multi_gpu": False}, datastore)


class ContextLossLabelApp(MONAILabelApp):
    """MONAI Label app serving this project's bundles: one infer and one train task per bundle.

    Configuration (``--conf KEY VALUE`` of ``monailabel start_server``):

    - ``bundles_dir``: folder of bundles (default: the repository's ``bundles/``, two levels above the app).
    - ``models``: ``all`` (default) or comma-separated bundle names.
    - ``preload``: ``true`` to build each network at start-up.

    A bundle that cannot serve (missing configs or ``models/model.pt``, weights that do not fit)
    raises at start-up, so the server does not start with a model silently missing.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        conf = dict(conf or {})
        bundles_dir = conf.get("bundles_dir") or os.path.join(app_dir, os.pardir, os.pardir, "bundles")
        self.bundle_dirs = find_bundles(os.path.abspath(bundles_dir), conf.get("models", "all"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="contextloss-monai",
            description="Topology-preserving segmentation of thin structures (ContextLoss bundles)",
            version=__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        preload = str(self.conf.get("preload", "false")).lower() == "true"
        return {path.name: BundleSegmentationInfer(path, preload=preload) for path in self.bundle_dirs}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {path.name: BundleTwoStageTrain(path, self.conf) for path in self.bundle_dirs}
