"""The MONAI Label server, narrowed to what this app serves: a route allow-list, checked requests, 4xx errors.

MONAI Label's FastAPI server (``monailabel.app``) exposes every route it has — session archives unpacked on the
server, model weights uploaded over ``models/model.pt``, the whole studies folder as a zip, logs — without a
login by default. :func:`harden_server` (called by the app when the server starts) puts :class:`RequestGuard`
in front of it and replaces the inference, training and model-upload endpoints with checked ones:

- **routes**: only those of :data:`ROUTES` (info, inference, the datastore's listing, upload and download of
  images and labels, training start / stop / status, active learning); sessions, model upload and the dataset
  zip only when the app's ``--conf`` enables them (:data:`OPTIONAL_ROUTES`); anything else is a 404.
- **names**: every ``image``, ``id``, ``tag``, ``label``, ``label_tag``, ``model`` query parameter and the model
  in the path is a plain name (HTTP 400).
- **who**: with a token (``--conf auth_token_file FILE`` or ``CONTEXTLOSS_LABEL_TOKEN``) every request carries
  ``Authorization: Bearer <token>`` (HTTP 401 otherwise); without one, only loopback clients are served unless
  ``--conf insecure true``.
- **inference**: on a datastore image (a plain id it holds, else 404) or on a file uploaded with the request —
  written by this server into its own upload folder and removed after the answer; ``params`` are checked after
  they are merged (:func:`contextloss_monai.label.tasks.check_infer_params`): they never name a file or weights;
  the image must be readable, within the size cap and of the model's dimension and channels.
- **training**: its values checked and every labelled image read and checked before it starts.
- **errors**: a bad request is an HTTP 4xx with a message.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import BackgroundTasks, Body, File, Form, HTTPException, UploadFile

from contextloss_monai.checks import check_plain_name

__all__ = ["OPTIONAL_ROUTES", "ROUTES", "RequestGuard", "UploadFolder", "harden_server", "is_loopback"]

logger = logging.getLogger(__name__)

#: (method, path pattern) of the routes served
ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", r"/info/?"),
    ("POST", r"/infer/[^/]+/?"),
    ("GET", r"/datastore/?"),
    ("PUT", r"/datastore/(image|label)/?"),
    ("GET", r"/datastore/(image|label)/?"),
    ("HEAD", r"/datastore/(image|label)/?"),
    ("GET", r"/datastore/(image|label)/info/?"),
    ("POST", r"/train/[^/]+/?"),
    ("GET", r"/train/?"),
    ("DELETE", r"/train/?"),
    ("POST", r"/activelearning/[^/]+/?"),
)
#: routes served only when the app's ``--conf <key> true`` enables them
OPTIONAL_ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "sessions": (("PUT", r"/session/?"), ("GET", r"/session/[^/]+/?"), ("DELETE", r"/session/[^/]+/?")),
    "model_upload": (("PUT", r"/model/[^/]+/?"),),
    "dataset_zip": (("GET", r"/datastore/dataset/?"),),
    "logs": (("GET", r"/logs/?"),),
}
#: query parameters that name a datastore entry or model: plain names only
NAME_PARAMETERS = ("image", "id", "tag", "label", "label_tag", "model")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware in front of MONAI Label's server: the route allow-list, the plain-name rule and the
    token or loopback rule of the module docstring, each refusal an HTTP 4xx with a JSON ``detail``.

    Args:
        app: the ASGI application behind it.
        routes: the (method, path pattern) pairs served.
        token: the bearer token every request must carry, or ``None``.
        insecure: without a token, serve clients that are not on the loopback too.
    """

    def __init__(self, app, routes: Sequence[tuple[str, str]], token: str | None = None, insecure: bool = False) -> None:
        self.app, self.token, self.insecure = app, token, insecure
        self.routes = [(method, re.compile(pattern)) for method, pattern in routes]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                from starlette.responses import JSONResponse

                status, detail = refusal
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        """``(status, message)`` for a request that is not served, ``None`` for one that is."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return 401, "this server needs 'Authorization: Bearer <token>'."
        elif not self.insecure and not is_loopback((scope.get("client") or ("",))[0]):
            return 403, "this server serves loopback clients only (configure a token: --conf auth_token_file FILE)."
        method, path = scope.get("method", "GET"), scope.get("path", "")
        if not any(m == method and pattern.fullmatch(path) for m, pattern in self.routes):
            optional = [key for key, routes in OPTIONAL_ROUTES.items() if any(m == method and re.fullmatch(p, path) for m, p in routes)]
            hint = f" (enable it with --conf {optional[0]} true)" if optional else ""
            return 404, f"{method} {path} is not served by this app{hint}."
        values = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                  if k in NAME_PARAMETERS]
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] in ("infer", "train", "model"):
            values.append(("model", "/".join(parts[1:])))
        for key, value in values:
            if value:
                try:
                    check_plain_name(value, key)
                except ValueError as error:
                    return 400, str(error)
        return None


class UploadFolder:
    """A private folder for the files uploaded with inference requests: only a path this object handed out
    counts as an upload (a request field naming any other file is not one)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="contextloss-label-uploads-"))
        self._issued: set[str] = set()
        self._lock = threading.Lock()

    def save(self, stream, filename: str | None) -> str:
        """Write ``stream`` to a new file whose suffix is that of ``filename`` (``.nii.gz`` by default); return its path."""
        name = filename or "upload.nii.gz"
        suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else ".nii" if name.lower().endswith(".nii") else ".upload"
        handle, path = tempfile.mkstemp(dir=self.folder, suffix=suffix)
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(stream, out)
        with self._lock:
            self._issued.add(path)
        return path

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return isinstance(path, str) and path in self._issued

    def remove(self, path: str) -> None:
        with self._lock:
            if path not in self._issued:
                return
            self._issued.discard(path)
        Path(path).unlink(missing_ok=True)


def _endpoints(server, instance, uploads: UploadFolder, options: dict[str, bool]) -> None:
    """Replace MONAI Label's inference, training and model-upload routes with checked ones."""
    from monailabel.endpoints.infer import send_response
    from monailabel.endpoints.train import run_model

    from contextloss_monai.label.datastore import read_image_file
    from contextloss_monai.label.tasks import check_infer_params, check_train_params

    def infer(background_tasks: BackgroundTasks, model: str, image: str = "", session_id: str = "",
              params: str = Form("{}"), file: UploadFile = File(None), output: str | None = None):
        task = instance._infers.get(model)
        if task is None:
            raise HTTPException(404, f"there is no model {model!r}; available: {sorted(instance._infers)}")
        try:
            merged = check_infer_params(json.loads(params) if params else {})
        except json.JSONDecodeError as error:
            raise HTTPException(400, f"params must be JSON: {error}") from None
        if output not in (None, "image", "json", "all"):
            raise HTTPException(400, f"output must be image, json or all, got {output!r}")
        sources = [bool(file), bool(image), bool(session_id)]
        if sum(sources) != 1:
            raise HTTPException(400, "give exactly one of: image (a datastore id), an uploaded file, session_id")
        path = None
        try:
            if file:
                path = uploads.save(file.file, file.filename)
                source = "uploaded image"
            elif image:
                path, source = instance.datastore().get_image_uri(image), f"image {image!r}"
            else:
                sessions = instance.sessions() if options.get("sessions") else None
                session = sessions.get_session(check_plain_name(session_id, "session_id")) if sessions else None
                if session is None:
                    raise HTTPException(404, f"there is no session {session_id!r}")
                path, source = session.image, f"session {session_id!r}"
                if not Path(os.path.realpath(path)).is_relative_to(Path(sessions.store_path).resolve()):
                    raise HTTPException(400, "the session's image leaves the session folder")
            data = read_image_file(path, source, instance.max_image_bytes)
            task.check_image(data.shape, source)
            result = instance.infer({**merged, "model": model, "image": path})
            response = send_response(instance.datastore(), result, output, background_tasks)
        except BaseException:
            if path is not None:
                uploads.remove(path)  # only a file this folder issued is removed
            raise
        if path is not None and path in uploads:
            background_tasks.add_task(uploads.remove, path)
        return response

    def train(model: str, params: dict | None = Body(None), run_sync: bool = False, enqueue: bool = False):
        task = instance._trainers.get(model)
        if task is None:
            raise HTTPException(404, f"there is no trainer {model!r}; available: {sorted(instance._trainers)}")
        check_train_params(params)
        task.check_datastore(instance.datastore())
        return run_model(model, params, run_sync, enqueue)

    def upload_model(model: str, file: UploadFile = File(...)):
        task = instance._infers.get(model)
        if task is None:
            raise HTTPException(404, f"there is no model {model!r}; available: {sorted(instance._infers)}")
        return {"model": model, "path": task.install_weights(file.file)}

    replaced = {("POST", "/infer/{model}"): infer, ("POST", "/train/{model}"): train, ("PUT", "/model/{model}"): upload_model}
    before = len(server.router.routes)
    for (method, path), endpoint in replaced.items():
        server.add_api_route(path, endpoint, methods=[method])
    routes = server.router.routes
    server.router.routes = routes[before:] + routes[:before]  # matched first: MONAI Label's own are never reached


def harden_server(instance, cors_origins: Sequence[str], token: str | None, options: dict[str, bool], insecure: bool) -> None:
    """Narrow the running MONAI Label server (``monailabel.app``) as the module docstring says: CORS only for
    ``cors_origins`` (MONAI Label reflects any origin, with credentials), :class:`RequestGuard`, the checked
    endpoints, HTTP 4xx for bad requests. Does nothing outside the server (the training subprocess)."""
    server_module = sys.modules.get("monailabel.app")
    if server_module is None:  # not running inside the MONAI Label server
        return
    from fastapi.middleware import Middleware
    from fastapi.middleware.cors import CORSMiddleware
    from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelException
    from starlette.responses import JSONResponse

    server = server_module.app
    routes = list(ROUTES) + [r for key, extra in OPTIONAL_ROUTES.items() if options.get(key) for r in extra]
    middleware = [m for m in server.user_middleware if m.cls is not CORSMiddleware]
    if cors_origins:
        middleware.insert(0, Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_credentials=False,
                                        allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["*"]))
    server.user_middleware = [Middleware(RequestGuard, routes=routes, token=token, insecure=insecure)] + middleware
    _endpoints(server, instance, instance.uploads, options)

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
    logger.info("server narrowed: routes %s, CORS origins %s, token %s, 4xx errors", [p for _, p in routes],
                list(cors_origins) or "none", "required" if token else "none")


def served_host(argv: Sequence[str] | None = None) -> str:
    """The address ``monailabel start_server`` binds (``--host`` / ``-i``; MONAI Label's default ``0.0.0.0``)."""
    argv = list(sys.argv if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg in ("--host", "-i") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return "0.0.0.0"


def read_token(conf: dict[str, Any]) -> str | None:
    """The bearer token: the first line of ``--conf auth_token_file FILE``, else ``CONTEXTLOSS_LABEL_TOKEN``, else ``None``.

    Raises:
        ValueError: an unreadable token file or a token shorter than 16 characters.
    """
    token = None
    if conf.get("auth_token_file"):
        try:
            token = Path(conf["auth_token_file"]).read_text().strip().splitlines()[0].strip()
        except (OSError, IndexError) as error:
            raise ValueError(f"auth_token_file {conf['auth_token_file']}: cannot read a token ({error}).") from error
    token = token or os.environ.get("CONTEXTLOSS_LABEL_TOKEN") or None
    if token is not None and len(token) < 16:
        raise ValueError("the bearer token must have at least 16 characters.")
    return token
