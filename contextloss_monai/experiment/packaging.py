"""Bundle zips: packing one the way ``python -m monai.bundle download --url`` expects it, and downloading
one with its SHA-256 verified and the bundle installed atomically.

Download and install a bundle, refusing a zip whose SHA-256 differs from the one published beside it::

    python -m contextloss_monai.experiment.packaging --url https://HOST/roads_2d_v0.1.0.zip \\
        --sha256 https://HOST/roads_2d_v0.1.0.zip.sha256 --bundle_dir ./bundles

(``--sha256`` takes the hex digest itself, a ``.sha256`` file or its URL.) MONAI's own
``monai.bundle download --url`` only warns that the integrity is not verified.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import atomic_file, umask_mode

__all__ = ["EXCLUDED", "VERSION_PATTERN", "download_bundle", "package_bundle"]

#: what never goes into a bundle zip (patterns relative to the bundle): run outputs and Python caches
EXCLUDED = RunLayout.RUN_OUTPUTS + ("*/__pycache__/*", "__pycache__/*", "*.pyc")
#: the bundle versions a zip name may carry (semantic versions, e.g. 0.1.0, 1.2.3rc1)
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+(?:[-.]?[A-Za-z0-9]+)*$")
_CHUNK = 1 << 20


def _bundle_files(bundle_dir: Path) -> list[Path]:
    """The regular files of a bundle: no symbolic links (to files or folders), no dotfiles or dot-folders."""
    found = []
    for folder, subfolders, files in os.walk(bundle_dir, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and not Path(folder, d).is_symlink())
        for name in sorted(files):
            path = Path(folder, name)
            if not name.startswith(".") and not path.is_symlink() and path.is_file():
                found.append(path)
    return found


def package_bundle(bundle_dir: str | os.PathLike, out_dir: str | os.PathLike, include_weights: bool = True) -> tuple[Path, str]:
    """Write ``<name>_v<version>.zip`` (one top-level ``<name>/`` folder, the layout ``monai.bundle download``
    extracts) and ``<zip>.sha256`` beside it; return the zip's path and SHA-256.

    Only regular files go in: symbolic links, dotfiles (``.env``, ``.git``...) and run outputs stay out. The
    zip is written to a temporary file and renamed into place.

    Args:
        bundle_dir: the bundle folder (``configs/metadata.json`` gives the version).
        out_dir: where the zip goes (created); it must not be inside ``bundle_dir``.
        include_weights: include ``models/*.pt|*.ts|*.onnx`` (per-epoch training checkpoints never are).

    Raises:
        FileNotFoundError: when ``bundle_dir`` has no ``configs/metadata.json``.
        ValueError: when ``out_dir`` is inside ``bundle_dir`` or the metadata ``version`` is not a version.
    """
    bundle_dir = Path(bundle_dir).resolve()
    metadata = bundle_dir / "configs" / "metadata.json"
    if not metadata.is_file():
        raise FileNotFoundError(f"bundle_dir {bundle_dir} has no configs/metadata.json.")
    version = str(json.loads(metadata.read_text()).get("version", ""))
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"{metadata}: version must be a version such as 0.1.0, got {version!r}.")
    out_dir = Path(out_dir).resolve()
    if out_dir.is_relative_to(bundle_dir):
        raise ValueError(f"out_dir {out_dir} is inside bundle_dir {bundle_dir}: the zip would pack itself; choose another folder.")
    name = bundle_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{name}_v{version}.zip"
    with atomic_file(archive) as stream, zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in _bundle_files(bundle_dir):
            relative = path.relative_to(bundle_dir).as_posix()
            if any(fnmatch.fnmatch(relative, pattern) for pattern in EXCLUDED):
                continue
            if not include_weights and relative.startswith("models/") and path.suffix in (".pt", ".ts", ".onnx"):
                continue
            zf.write(path, f"{name}/{relative}")
    digest = _sha256(archive)
    Path(f"{archive}.sha256").write_text(f"{digest}  {archive.name}\n")
    return archive, digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_digest(sha256: str) -> str:
    """The hex digest from the value itself, a local ``.sha256`` file or its URL (first word, as ``sha256sum``)."""
    text = sha256.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        if re.match(r"^[a-z][a-z0-9+.-]*://", text):
            with urllib.request.urlopen(text, timeout=60) as response:  # noqa: S310 - the user's own URL
                text = response.read(4096).decode("utf-8", "replace")
        elif Path(text).is_file():
            text = Path(text).read_text()
        else:
            raise ValueError(f"sha256 must be a 64-digit hex digest, a .sha256 file or its URL, got {sha256!r}.")
        text = text.split()[0] if text.split() else ""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(f"sha256 {sha256!r} does not hold a SHA-256 digest.")
    return text.lower()


def _safe_members(archive: zipfile.ZipFile, source: str) -> str:
    """The one top-level folder of a bundle zip, after checking that no member leaves it or is a link."""
    tops = set()
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in info.filename:
            raise ValueError(f"{source}: member {info.filename!r} would be written outside the bundle folder.")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise ValueError(f"{source}: member {info.filename!r} is a symbolic link.")
        tops.add(path.parts[0])
    if len(tops) != 1:
        raise ValueError(f"{source}: a bundle zip holds one top-level folder, found {sorted(tops)}.")
    top = tops.pop()
    if f"{top}/configs/metadata.json" not in archive.namelist():
        raise ValueError(f"{source}: {top}/configs/metadata.json is missing; this is not a bundle zip.")
    return top


def download_bundle(url: str, bundle_dir: str | os.PathLike, sha256: str) -> Path:
    """Download a bundle zip, verify its SHA-256, and install it as ``bundle_dir/<name>`` atomically.

    The zip is downloaded into a temporary file and checked against ``sha256`` before anything is unpacked;
    a mismatch is refused and leaves nothing behind. The bundle is unpacked into a temporary folder beside
    its destination (members that would leave the folder, and symbolic links, are refused) and renamed into
    place only when complete; an older copy is replaced only then.

    Args:
        url: the zip's URL (``https://``, ``http://``, ``file://``) or a local path.
        bundle_dir: the folder that holds bundles (created).
        sha256: the expected SHA-256: the hex digest, a ``.sha256`` file or its URL.

    Returns:
        the installed bundle folder.

    Raises:
        ValueError: a digest mismatch, a malformed digest or zip.
    """
    expected = _expected_digest(sha256)
    bundle_dir = Path(bundle_dir).resolve()
    bundle_dir.mkdir(parents=True, exist_ok=True)
    source = url if re.match(r"^[a-z][a-z0-9+.-]*://", url) else Path(url).resolve().as_uri()
    handle, download = tempfile.mkstemp(dir=bundle_dir, prefix=".download.", suffix=".partial")
    staging = None
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as stream, urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                stream.write(chunk)
        if digest.hexdigest() != expected:
            raise ValueError(f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {expected}; not installed.")
        with zipfile.ZipFile(download) as archive:
            name = _safe_members(archive, url)
            staging = Path(tempfile.mkdtemp(dir=bundle_dir, prefix=f".{name}.", suffix=".partial"))
            archive.extractall(staging)
        os.chmod(staging / name, umask_mode(0o777))
        target = bundle_dir / name
        previous = None
        if target.exists():
            previous = Path(tempfile.mkdtemp(dir=bundle_dir, prefix=f".{name}.", suffix=".old"))
            target.rename(previous / name)
        (staging / name).rename(target)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        return target
    except zipfile.BadZipFile as error:
        raise ValueError(f"{url}: not a zip file ({error}).") from error
    finally:
        Path(download).unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download a bundle zip, verify its SHA-256 and install it atomically.")
    parser.add_argument("--url", required=True, help="the bundle zip (URL or path)")
    parser.add_argument("--sha256", required=True, help="the expected SHA-256: hex digest, .sha256 file or its URL")
    parser.add_argument("--bundle_dir", default="bundles", help="folder that holds the bundles (default: bundles)")
    args = parser.parse_args(argv)
    try:
        print(download_bundle(args.url, args.bundle_dir, args.sha256))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
