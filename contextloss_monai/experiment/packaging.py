"""Zipping a bundle the way ``python -m monai.bundle download --url`` expects it."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import zipfile
from pathlib import Path

from contextloss_monai.layout import RunLayout

__all__ = ["package_bundle", "EXCLUDED"]

#: what never goes into a bundle zip (patterns relative to the bundle): run outputs and Python caches
EXCLUDED = RunLayout.RUN_OUTPUTS + ("*/__pycache__/*", "__pycache__/*", "*.pyc")


def package_bundle(bundle_dir: str | os.PathLike, out_dir: str | os.PathLike, include_weights: bool = True) -> tuple[Path, str]:
    """Write ``<name>_v<version>.zip`` (one top-level ``<name>/`` folder, the layout ``monai.bundle download``
    extracts) and ``<zip>.sha256`` beside it; return the zip's path and SHA-256.

    Args:
        bundle_dir: the bundle folder (``configs/metadata.json`` gives the version).
        out_dir: where the zip goes (created).
        include_weights: include ``models/*.pt|*.ts|*.onnx`` (per-epoch training checkpoints never are).

    Raises:
        FileNotFoundError: when ``bundle_dir`` has no ``configs/metadata.json``.
    """
    bundle_dir = Path(bundle_dir).absolute()
    metadata = bundle_dir / "configs" / "metadata.json"
    if not metadata.is_file():
        raise FileNotFoundError(f"bundle_dir {bundle_dir} has no configs/metadata.json.")
    version = json.loads(metadata.read_text())["version"]
    name = bundle_dir.name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{name}_v{version}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(bundle_dir).as_posix()
            if any(fnmatch.fnmatch(relative, pattern) for pattern in EXCLUDED):
                continue
            if not include_weights and relative.startswith("models/") and path.suffix in (".pt", ".ts", ".onnx"):
                continue
            zf.write(path, f"{name}/{relative}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    Path(f"{archive}.sha256").write_text(f"{digest}  {archive.name}\n")
    return archive, digest
