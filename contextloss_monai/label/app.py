"""The MONAI Label app serving this project's bundles: one infer and one train task per bundle.

``apps/contextloss_label/main.py`` exposes :class:`ContextLossLabelApp`; start it with::

    python -m monailabel.main start_server --app apps/contextloss_label --studies STUDIES --host 127.0.0.1 \\
        --conf bundles_dir bundles --conf models roads_2d,vessap_3d
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.utils.sessions import Sessions

from contextloss_monai import __version__
from contextloss_monai.archives import safe_extract
from contextloss_monai.checks import check_plain_name
from contextloss_monai.label.datastore import DEFAULT_MAX_IMAGE_BYTES, SafeLocalDatastore
from contextloss_monai.label.server import OPTIONAL_ROUTES, UploadFolder, harden_server, is_loopback, read_token, served_host
from contextloss_monai.label.tasks import BundleSegmentationInfer, BundleTwoStageTrain, find_bundles

__all__ = ["ContextLossLabelApp", "SafeSessions"]

logger = logging.getLogger(__name__)


def _flag(conf: dict[str, Any], key: str) -> bool:
    return str(conf.get(key, "false")).strip().lower() in ("true", "1", "yes")


class SafeSessions(Sessions):
    """MONAI Label's sessions with uploaded archives unpacked safely: every member checked and confined to a new
    folder (:func:`contextloss_monai.archives.safe_extract`, at most ``max_bytes``) instead of ``shutil.unpack_archive``."""

    def __init__(self, store_path: str, expiry: int, max_bytes: int) -> None:
        super().__init__(store_path, expiry)
        self.max_bytes = max_bytes

    def add_session(self, data_file: str, expiry: int = 0, uncompress: bool = False, session_id=None):
        if session_id is not None:
            check_plain_name(session_id, "session_id")
        if uncompress and not os.path.isdir(data_file):
            unpacked = tempfile.mkdtemp(prefix="contextloss-session-")
            safe_extract(data_file, unpacked, self.max_bytes)
            data_file = unpacked
        return super().add_session(data_file, expiry, False, session_id)


class ContextLossLabelApp(MONAILabelApp):
    """MONAI Label app serving this project's bundles: one infer and one train task per bundle.

    Configuration (``--conf KEY VALUE`` of ``monailabel start_server``):

    - ``bundles_dir``: folder of bundles (default: the repository's ``bundles/``, two levels above the app).
    - ``models``: ``all`` (default) or comma-separated bundle names.
    - ``preload``: ``true`` to build each network at start-up.
    - ``cors_origins``: comma-separated origins a web page may call the server from (default: none, CORS
      off; MONAI Label's ``MONAI_LABEL_CORS_ORIGINS`` setting counts as well).
    - ``auth_token_file``: a file whose first line is the bearer token every request must carry (or the
      ``CONTEXTLOSS_LABEL_TOKEN`` variable). Without a token the server refuses to start on an address that is
      not loopback (MONAI Label's default ``--host`` is ``0.0.0.0``) unless ``insecure`` is ``true``.
    - ``sessions``, ``model_upload``, ``dataset_zip``, ``logs``: ``true`` serves those routes (off by default);
      session archives are then unpacked safely, uploaded weights installed only when they fit and are finite.
    - ``max_image_mb``: the largest image or label accepted (voxels in memory, default 1024).

    A bundle that cannot serve (missing configs or ``models/model.pt``, weights that do not fit) raises at
    start-up, so the server does not start with a model silently missing. What the server refuses is described
    in :mod:`contextloss_monai.label.server`; the studies folder's confinement in
    :mod:`contextloss_monai.label.datastore`.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        conf = dict(conf or {})
        bundles_dir = conf.get("bundles_dir") or os.path.join(app_dir, os.pardir, os.pardir, "bundles")
        self.bundle_dirs = find_bundles(os.path.abspath(bundles_dir), conf.get("models", "all"))
        self.options = {key: _flag(conf, key) for key in OPTIONAL_ROUTES}
        self.max_image_bytes = int(float(conf.get("max_image_mb", DEFAULT_MAX_IMAGE_BYTES >> 20)) * (1 << 20))
        self.token = read_token(conf)
        self.uploads = None
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
            raise ValueError("studies must be a local folder: this app serves a local studies folder only.")
        return SafeLocalDatastore(
            self.studies,
            max_image_bytes=self.max_image_bytes,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def _load_sessions(self, load: bool = False):
        if not self.options.get("sessions"):
            return None
        return SafeSessions(settings.MONAI_LABEL_SESSION_PATH, settings.MONAI_LABEL_SESSION_EXPIRY, self.max_image_bytes)

    def on_init_complete(self) -> None:
        super().on_init_complete()
        host = served_host()
        insecure = _flag(self.conf, "insecure")
        if self.token is None and not insecure and not is_loopback(host):
            raise RuntimeError(
                f"refusing to serve on {host} without a token: other machines could reach it. Bind --host 127.0.0.1, "
                "or configure a token (--conf auth_token_file FILE), or pass --conf insecure true."
            )
        self.uploads = UploadFolder()
        configured = [o.strip() for o in str(self.conf.get("cors_origins", "")).split(",") if o.strip()]
        harden_server(self, configured or [str(o) for o in settings.MONAI_LABEL_CORS_ORIGINS], self.token, self.options, insecure)

    def infer(self, request, datastore=None):
        """MONAI Label's inference, on a datastore image or on a file this server's upload folder issued: any other
        path in ``image`` is refused (the checked endpoint gives only those; this holds for any other caller too)."""
        image = request.get("image")
        if not isinstance(image, str):
            raise ValueError("image must name a datastore image or an upload.")
        issued = self.uploads is not None and image in self.uploads
        sessions = self.sessions()
        in_sessions = sessions is not None and Path(os.path.realpath(image)).is_relative_to(Path(sessions.store_path).resolve())
        in_studies = Path(os.path.realpath(image)).is_relative_to(Path(self.studies).resolve())
        if not (issued or in_sessions or in_studies):
            raise ValueError("image must name a datastore image or an upload of this request.")
        return super().infer(request, datastore)

    def init_infers(self) -> dict[str, InferTask]:
        preload = _flag(self.conf, "preload")
        return {path.name: BundleSegmentationInfer(path, preload=preload) for path in self.bundle_dirs}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {path.name: BundleTwoStageTrain(path, self.conf) for path in self.bundle_dirs}
