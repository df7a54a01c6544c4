"""The MONAI Label tasks of a bundle: inference through ``configs/inference.yaml``, two-stage training.

Why not the stock ``monaibundle`` sample app: its ``BundleInferTask`` imports ``monailabel.transform.post``,
which imports ``torchvision`` at module level (there is no CPU build of torchvision for this project's torch),
it skips a bundle that fails to load with only a warning, and its training runs ``train`` alone (no CLoss
fine-tuning). The tasks here build on ``BasicInferTask`` and ``BundleTrainTask``, read the same bundle files
(``configs/inference.yaml``: ``network_def``, ``preprocessing``, ``inferer``; ``configs/metadata.json``: labels
and dimension; ``models/model.pt``) and raise at start-up when a bundle cannot serve. Request values are
checked here (:func:`check_infer_params`, :func:`check_train_params`) before anything runs.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
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
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

from contextloss_monai.bundle.weights import load_weights
from contextloss_monai.checks import check_option, check_unit_interval
from contextloss_monai.data import check_dataset_items
from contextloss_monai.method import LOSS_NAMES
from contextloss_monai.utils import atomic_path, to_numpy

__all__ = [
    "BundleSegmentationInfer",
    "BundleTwoStageTrain",
    "INFER_PARAMETERS",
    "TRAIN_PARAMETERS",
    "check_device",
    "check_infer_params",
    "check_train_params",
    "find_bundles",
]

logger = logging.getLogger(__name__)

#: what an inference request may set (``params``); anything naming a file, model or image is refused
INFER_PARAMETERS = ("device", "result_extension", "result_dtype", "result_compress", "client_id", "label_info", "largest_cc",
                    "restore_label_idx")
#: what a training request may set (``loss_name`` and ``gamma``: the fine-tuning's method, as the bundle's settings)
TRAIN_PARAMETERS = ("max_epochs", "val_split", "device", "pretrained", "client_id", "loss_name", "gamma")
_RESULT_EXTENSIONS = (".nii.gz", ".nii")


def check_device(value: Any, name: str = "device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` of a GPU this machine has.

    Raises:
        ValueError: naming ``name`` and the devices available.
    """
    count = torch.cuda.device_count()
    available = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(count)] if count else [])
    if not isinstance(value, str) or value not in available:
        raise ValueError(f"{name} must be one of {available}, got {value!r}.")
    return value


def _request_params(params: Any, allowed: Sequence[str], what: str) -> dict:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValueError(f"{what} params must be a JSON object, got {type(params).__name__}.")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{what} params {unknown} are not accepted; allowed: {list(allowed)}.")
    return dict(params)


def check_infer_params(params: Any) -> dict:
    """The ``params`` of an inference request, checked: only :data:`INFER_PARAMETERS` (never ``image``,
    ``model``, ``model_filename``, ``label``...), a device this machine has, a NIfTI result extension.

    Raises:
        ValueError: naming the parameter.
    """
    params = _request_params(params, INFER_PARAMETERS, "inference")
    if "device" in params:
        check_device(params["device"])
    if "result_extension" in params and params["result_extension"] not in _RESULT_EXTENSIONS:
        raise ValueError(f"result_extension must be one of {_RESULT_EXTENSIONS}, got {params['result_extension']!r}.")
    if "result_dtype" in params and params["result_dtype"] not in ("uint8",):
        raise ValueError(f"result_dtype must be 'uint8', got {params['result_dtype']!r}.")
    for key in ("result_compress", "largest_cc", "restore_label_idx"):
        if key in params and not isinstance(params[key], bool):
            raise ValueError(f"{key} must be true or false, got {params[key]!r}.")
    return params


def check_train_params(params: Any) -> dict:
    """The ``params`` of a training request, checked: only :data:`TRAIN_PARAMETERS`; ``max_epochs`` an integer
    1..10000, ``val_split`` in [0, 1), ``pretrained`` a boolean, a device this machine has, ``loss_name`` one of
    :data:`~contextloss_monai.method.LOSS_NAMES`, ``gamma`` a number in [0, 1].

    Raises:
        ValueError: naming the parameter.
    """
    params = _request_params(params, TRAIN_PARAMETERS, "training")
    if "max_epochs" in params:
        value = params["max_epochs"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
            raise ValueError(f"max_epochs must be an integer from 1 to 10000, got {value!r}.")
    if "val_split" in params:
        if isinstance(params["val_split"], bool) or check_unit_interval(params["val_split"], "val_split") >= 1:
            raise ValueError(f"val_split must be a number in [0, 1), got {params['val_split']!r}.")
    if "pretrained" in params and not isinstance(params["pretrained"], bool):
        raise ValueError(f"pretrained must be true or false, got {params['pretrained']!r}.")
    if "device" in params:
        check_device(params["device"])
    if "loss_name" in params:
        check_option(params["loss_name"] if isinstance(params["loss_name"], str) else repr(params["loss_name"]), LOSS_NAMES, "loss_name")
    if "gamma" in params:
        if isinstance(params["gamma"], bool) or not isinstance(params["gamma"], (int, float)):
            raise ValueError(f"gamma must be a number in [0, 1], got {params['gamma']!r}.")
        check_unit_interval(params["gamma"], "gamma")
    if "client_id" in params and not (isinstance(params["client_id"], str) and re.fullmatch(r"[\w.@-]{0,128}", params["client_id"])):
        raise ValueError("client_id must be a short name.")
    return params


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
        self.in_channels = int(image_format.get("num_channels", 1))
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

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self.version}

    def check_image(self, shape: Sequence[int], what: str = "image") -> None:
        """Raise ``ValueError`` unless an image of ``shape`` (channel-last on disk) fits this model: ``dimension``
        spatial axes plus, for several channels, a last axis of ``in_channels``."""
        dim, channels = self.dimension, self.in_channels
        fits = (len(shape) == dim and channels == 1) or (len(shape) == dim + 1 and shape[-1] == channels)
        if not fits:
            expected = f"{dim} spatial axes" + (f" and {channels} channels last" if channels > 1 else "")
            raise ValueError(f"the {what} has shape {tuple(shape)}; model {self.bundle_dir.name} takes {dim}D images ({expected}).")

    def install_weights(self, stream, max_bytes: int = 2 << 30) -> str:
        """Install uploaded weights as ``models/model.pt`` (``--conf model_upload true``): written beside it, loaded
        into the bundle's ``network_def`` (strict, finite: :func:`contextloss_monai.bundle.load_weights`) and
        renamed into place only then; a refused upload leaves the served model as it was.

        Raises:
            ValueError: weights that are unreadable, do not fit or hold NaN / inf, or more than ``max_bytes``.
        """
        target = Path(self.path[0])
        with atomic_path(target) as temporary:
            size = 0
            with temporary.open("wb") as out:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError(f"the uploaded weights are larger than {max_bytes} bytes.")
                    out.write(chunk)
            load_weights(copy.deepcopy(self.network), temporary, setting="uploaded weights")
        return str(target.relative_to(self.bundle_dir))

    def _get_network(self, device: str, data: Any) -> torch.nn.Module:
        """The network with ``models/model.pt`` on ``device``, reloaded when the file changes — through
        :func:`contextloss_monai.bundle.load_weights` (strict, finite weights only); a request never picks the file."""
        path = self.path[0]
        stamp = os.stat(path).st_mtime_ns
        cached = self._networks.get(device)
        if cached is not None and cached[1] == stamp:
            return cached[0]
        network = load_weights(copy.deepcopy(self.network).to(torch.device(device)), path, setting=f"{self.bundle_dir.name}: model_path")
        network.eval()
        self._networks[device] = (network, stamp)
        return network

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
    """MONAI Label training through the bundle's configs: pretraining, then fine-tuning (CLoss unless the request
    or the bundle names another loss).

    MONAI Label's ``BundleTrainTask`` runs ``configs/train.yaml`` on the datastore's labelled images
    (``train#dataset#data`` / ``validate#dataset#data`` overrides, ``val_split`` of them for validation).
    This task runs the same overrides through both stages of the bundle, as ``python -m monai.bundle
    run`` does: ``train.yaml`` (Dice & CE, writes ``models/pretrained.pt``), then ``train.yaml`` +
    ``finetune.yaml`` (ContextLoss, writes ``models/model.pt``, which the infer task reloads).
    The request's ``max_epochs`` sets the pretraining epochs (``pretrain_epochs``); fine-tuning runs the
    bundle's fraction of them, with the request's ``loss_name`` and ``gamma`` when it sets them (the bundle's
    ``finetune.yaml`` settings otherwise; the client lists the loss names, the bundle's first). ``pretrained`` (default true) starts pretraining from the current
    ``models/pretrained.pt`` when it exists. The request and every labelled image are checked before either
    stage runs; ``models/model.pt`` is replaced only by a completed fine-tuning with finite weights (the bundle's
    ``FinalModelSaver``).
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
        finetune = ConfigParser.load_config_file(os.path.join(self.bundle_path, "configs", "finetune.yaml"))
        default = finetune.get("loss_name", "context")
        options.update(loss_name=[default, *(name for name in LOSS_NAMES if name != default)], gamma=float(finetune.get("gamma", 0.2)))
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
        finetune_overrides.update({k: request[k] for k in ("loss_name", "gamma") if k in request})
        method = finetune_overrides.get("loss_name", "the bundle's loss")
        logger.info(f"{Path(self.bundle_path).name}: fine-tuning with {method} from models/pretrained.pt")
        monai.bundle.run(config_file=[os.path.join(configs, "train.yaml"), os.path.join(configs, "finetune.yaml")], **common, **finetune_overrides)

    def check_datastore(self, datastore: Datastore) -> list[dict]:
        """The datastore's labelled images, each read and checked as the bundles check data before training
        (:func:`contextloss_monai.data.check_dataset_items`): an error names the file.

        Raises:
            ValueError: no labelled image, or a bad one.
        """
        items = [d for d in datastore.datalist() if d]
        if not items:
            raise ValueError(f"{Path(self.bundle_path).name}: the datastore has no labelled image to train on; save labels first.")
        check_dataset_items(items, int(self.bundle_config.get("network_def", {}).get("in_channels", 1)))
        return items

    def __call__(self, request: dict, datastore: Datastore) -> dict:
        check_train_params({k: request[k] for k in TRAIN_PARAMETERS if k in request})  # MONAI Label adds its own keys
        self.check_datastore(datastore)
        return super().__call__({**request, "multi_gpu": False}, datastore)
