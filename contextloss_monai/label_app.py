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
import sys
import tempfile
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl
from pathlib import Path
from typing import Any

import monai.bundle
import nibabel as nib
import numpy as np
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.transforms import Compose, SqueezeDimd
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

from contextloss_monai import __version__
from contextloss_monai.bundle.weights import load_weights
from contextloss_monai.checks import check_plain_name
from contextloss_monai.utils import to_numpy

__all__ = ["BundleSegmentationInfer", "BundleTwoStageTrain", "ContextLossLabelApp", "PlainNameGuard", "SafeLocalDatastore", "find_bundles"]

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


#: request parameters that name a datastore entry or model: plain names only
_NAME_PARAMETERS = ("image", "id", "tag", "label", "label_tag", "model")


def _is_upload(path: str) -> bool:
    """Whether ``path`` is a file MONAI Label's endpoints wrote for an upload (a temporary file)."""
    return os.path.isfile(path) and Path(path).resolve().parent == Path(tempfile.gettempdir()).resolve()


def _remove_upload(path: str) -> None:
    if isinstance(path, str) and _is_upload(path):
        Path(path).unlink(missing_ok=True)


def _check_image_file(path: str, what: str) -> None:
    """Raise ``ValueError`` unless ``path`` reads as an image (NIfTI with nibabel, anything else with MONAI)."""
    try:
        if path.endswith((".nii", ".nii.gz")):
            image = nib.load(path)
            if len(image.shape) < 2:
                raise ValueError(f"{len(image.shape)}D data")
            np.asanyarray(image.dataobj[(slice(0, 1),) * len(image.shape)])
        else:
            from monai.transforms import LoadImage

            LoadImage(image_only=True)(path)
    except Exception as error:  # noqa: BLE001 - any reader failure means: not an image
        raise ValueError(f"the uploaded {what} is not a readable image ({type(error).__name__}: {error}).") from error


class SafeLocalDatastore(LocalDatastore):
    """MONAI Label's local datastore that accepts only plain names as image ids and label tags (no path
    separators, ``..`` or absolute paths) and only readable images as uploads, before it touches the file
    system: nothing outside the studies folder is read or written, and an upload can never land on a
    bundle's files. A refused upload's temporary file is removed."""

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        try:
            check_plain_name(image_id or self._to_id(os.path.basename(image_filename))[0], "image")
            _check_image_file(image_filename, "image")
        except ValueError:
            _remove_upload(image_filename)
            raise
        return super().add_image(image_id, image_filename, image_info)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        try:
            check_plain_name(image_id, "image")
            check_plain_name(label_tag, "tag")
            _check_image_file(label_filename, "label")
        except ValueError:
            _remove_upload(label_filename)
            raise
        return super().save_label(image_id, label_filename, label_tag, label_info)

    def remove_image(self, image_id: str) -> None:
        super().remove_image(check_plain_name(image_id, "id"))

    def remove_label(self, label_id: str, label_tag: str) -> None:
        super().remove_label(check_plain_name(label_id, "id"), check_plain_name(label_tag, "tag"))

    def get_image_uri(self, image_id: str) -> str:
        return super().get_image_uri(check_plain_name(image_id, "image"))

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        return super().get_label_uri(check_plain_name(label_id, "label"), check_plain_name(label_tag, "tag"))


class PlainNameGuard:
    """ASGI middleware: a request whose ``image``, ``id``, ``tag``, ``label``, ``label_tag`` or ``model`` query
    parameter, or whose model in ``/infer/<model>`` / ``/train/<model>``, is not a plain name gets HTTP 400
    before any endpoint runs (absolute paths and ``..`` never reach MONAI Label's file handling)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            problem = self._problem(scope)
            if problem is not None:
                from starlette.responses import JSONResponse

                await JSONResponse({"detail": problem}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _problem(scope) -> str | None:
        values = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True) if k in _NAME_PARAMETERS]
        parts = [p for p in scope.get("path", "").split("/") if p]
        if len(parts) >= 2 and parts[0] in ("infer", "train"):
            values.append(("model", "/".join(parts[1:])))
        for key, value in values:
            if value:
                try:
                    check_plain_name(value, key)
                except ValueError as error:
                    return str(error)
        return None


def _harden_server(cors_origins: Sequence[str]) -> None:
    """The running MONAI Label server (``monailabel.app``), made safe for a local app: CORS only for the
    configured origins (MONAI Label reflects any origin, with credentials), the :class:`PlainNameGuard`, and
    HTTP 4xx with a message instead of a bare 500 for unknown models, missing images or labels and bad input."""
    server_module = sys.modules.get("monailabel.app")
    if server_module is None:  # not running inside the MONAI Label server
        return
    from fastapi.middleware import Middleware
    from fastapi.middleware.cors import CORSMiddleware
    from starlette.responses import JSONResponse

    server = server_module.app
    middleware = [m for m in server.user_middleware if m.cls is not CORSMiddleware]
    if cors_origins:
        middleware.insert(0, Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_credentials=False,
                                        allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["*"]))
    server.user_middleware = [Middleware(PlainNameGuard)] + middleware

    async def not_found(request, error):
        return JSONResponse({"detail": str(getattr(error, "msg", error))}, status_code=404)

    async def bad_request(request, error):
        message = str(getattr(error, "msg", error))
        return JSONResponse({"detail": message}, status_code=404 if "no model" in message.lower() else 400)

    server.add_exception_handler(ImageNotFoundException, not_found)
    server.add_exception_handler(LabelNotFoundException, not_found)
    server.add_exception_handler(MONAILabelException, bad_request)
    server.add_exception_handler(ValueError, bad_request)
    server.middleware_stack = server.build_middleware_stack()  # the stack was built for the start-up call
    logger.info("server hardened: CORS origins %s, plain-name guard, 4xx errors", list(cors_origins) or "none")


class ContextLossLabelApp(MONAILabelApp):
    """MONAI Label app serving this project's bundles: one infer and one train task per bundle.

    Configuration (``--conf KEY VALUE`` of ``monailabel start_server``):

    - ``bundles_dir``: folder of bundles (default: the repository's ``bundles/``, two levels above the app).
    - ``models``: ``all`` (default) or comma-separated bundle names.
    - ``preload``: ``true`` to build each network at start-up.
    - ``cors_origins``: comma-separated origins a web page may call the server from (default: none, CORS
      off; MONAI Label's ``MONAI_LABEL_CORS_ORIGINS`` setting counts as well).

    A bundle that cannot serve (missing configs or ``models/model.pt``, weights that do not fit)
    raises at start-up, so the server does not start with a model silently missing.

    The server refuses what could reach outside the studies folder: image ids and label tags must be plain
    names (:class:`SafeLocalDatastore`, :class:`PlainNameGuard`), inference runs on datastore images or
    uploads only (never on a server path), uploads must be readable images (refused ones are deleted), and
    errors are HTTP 4xx with a message.
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

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return SafeLocalDatastore(
            self.studies,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def on_init_complete(self) -> None:
        super().on_init_complete()
        configured = [o.strip() for o in str(self.conf.get("cors_origins", "")).split(",") if o.strip()]
        _harden_server(configured or [str(o) for o in settings.MONAI_LABEL_CORS_ORIGINS])

    def infer(self, request, datastore=None):
        """MONAI Label's inference, on a datastore image (a plain id) or an upload only: a server path in
        ``image`` is refused (MONAI Label would read any file the server can). A failed request's upload is
        removed."""
        image = request.get("image")
        try:
            if request.get("model") not in self._infers:
                raise MONAILabelException(MONAILabelError.INVALID_INPUT, f"there is no model {request.get('model')!r}; available: {sorted(self._infers)}")
            sessions = getattr(self.sessions(), "store_path", None) if self.sessions() is not None else None
            in_sessions = bool(sessions) and isinstance(image, str) and Path(image).resolve().is_relative_to(Path(sessions).resolve())
            if isinstance(image, str) and not (_is_upload(image) or in_sessions):
                check_plain_name(image, "image")
            return super().infer(request, datastore)
        except BaseException:
            _remove_upload(image)
            raise

    def init_infers(self) -> dict[str, InferTask]:
        preload = str(self.conf.get("preload", "false")).lower() == "true"
        return {path.name: BundleSegmentationInfer(path, preload=preload) for path in self.bundle_dirs}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {path.name: BundleTwoStageTrain(path, self.conf) for path in self.bundle_dirs}
