"""Bundle zips: packing one the way ``python -m monai.bundle download --url`` expects it, and downloading
one with its SHA-256 verified and the bundle installed atomically.

Pack a bundle, then download and install it, refusing a zip whose SHA-256 differs from the one published beside it::

    contextloss package bundles/roads_2d --out dist/
    contextloss download --url https://HOST/roads_2d_v0.6.0.zip --sha256 https://HOST/roads_2d_v0.6.0.zip.sha256 --bundle_dir ./bundles

(``--sha256`` takes the hex digest itself, a ``.sha256`` file or its URL; ``--name`` the bundle's name when the
zip is not called ``<name>_v<version>.zip``; ``--max_download_mb`` / ``--max_unpacked_mb`` raise the size caps.)
MONAI's ``monai.bundle download --url`` only warns that the integrity is not verified; its ``download_url``
checks a hash only after the whole file is down and caps no size, and ``extractall`` checks no member, so the
download streams through a size cap and hashes as it goes, and the zip is unpacked by
:mod:`contextloss_monai.archives`.
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

from contextloss_monai.archives import ArchiveError, archive_members, safe_extract
from contextloss_monai.checks import check_plain_name, check_positive_int
from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import atomic_file, install_folder, remove_partial_files, umask_mode, write_text_atomic

__all__ = ["DEFAULT_MAX_DOWNLOAD_BYTES", "DEFAULT_MAX_UNPACKED_BYTES", "EXCLUDED", "VERSION_PATTERN", "bundle_name_of", "download_bundle", "package_bundle"]

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
    write_text_atomic(f"{archive}.sha256", f"{digest}  {archive.name}\n")
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


#: default caps of :func:`download_bundle` (generous: the shipped bundles zip to a few MB with their weights)
DEFAULT_MAX_DOWNLOAD_BYTES = 2 << 30
DEFAULT_MAX_UNPACKED_BYTES = 4 << 30
#: ``<name>_v<version>.zip``, the name :func:`package_bundle` gives a zip
_ZIP_NAME = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)_v(?P<version>\d+\.\d+\.\d+[A-Za-z0-9.-]*)\.zip$")


def bundle_name_of(url: str) -> str | None:
    """The bundle name in a zip's file name ``<name>_v<version>.zip`` (as :func:`package_bundle` names it), or ``None``."""
    match = _ZIP_NAME.match(PurePosixPath(url.split("?")[0].split("#")[0]).name)
    return match.group("name") if match else None


def _bundle_top(archive: Path, source: str, name: str, max_bytes: int) -> None:
    """Check a bundle zip before unpacking: every member safe (:func:`contextloss_monai.archives.archive_members`)
    and under one top-level folder called ``name``, which holds ``configs/metadata.json``."""
    members = archive_members(archive, max_bytes)
    with zipfile.ZipFile(archive) as zf:
        tops = {PurePosixPath(info.filename).parts[0] for info in zf.infolist()}
    if tops != {name}:
        raise ValueError(f"{source}: a zip of bundle {name!r} holds one top-level folder {name}/, found {sorted(tops)}; not installed.")
    if f"{name}/configs/metadata.json" not in {m for m, _ in members}:
        raise ValueError(f"{source}: {name}/configs/metadata.json is missing; this is not a bundle zip.")


def download_bundle(
    url: str,
    bundle_dir: str | os.PathLike,
    sha256: str,
    name: str | None = None,
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> Path:
    """Download a bundle zip, verify its SHA-256, and install it as ``bundle_dir/<name>`` in one rename.

    The zip is downloaded into a hidden temporary file (at most ``max_download_bytes``: a longer download is
    stopped) and checked against ``sha256`` before anything is unpacked; a mismatch is refused and leaves
    nothing behind. Its members are checked (:mod:`contextloss_monai.archives`: no path leaving the folder,
    no link, at most ``max_unpacked_bytes`` unpacked) and must sit in one top-level folder called ``name``.
    The bundle is unpacked into a hidden staging folder beside its destination and put in place in one step:
    swapped with the installed copy (Linux's atomic exchange), so there is no moment without a complete bundle
    at ``bundle_dir/<name>``. What a killed earlier download of the same bundle left is removed first.

    Args:
        url: the zip's URL (``https://``, ``http://``, ``file://``) or a local path.
        bundle_dir: the folder that holds bundles (created).
        sha256: the expected SHA-256: the hex digest, a ``.sha256`` file or its URL.
        name: the bundle to install; ``None``: read from the zip's file name ``<name>_v<version>.zip``.
        max_download_bytes: the largest download accepted.
        max_unpacked_bytes: the largest total size of the unpacked files accepted.

    Returns:
        the installed bundle folder.

    Raises:
        ValueError: a digest mismatch, a malformed digest or zip, a zip for another bundle, a size over a cap,
            or no bundle name.
    """
    name = name if name is not None else bundle_name_of(url)
    if name is None:
        raise ValueError(f"url {url!r} is not named <bundle>_v<version>.zip: pass the bundle's name (--name).")
    check_plain_name(name, "name")
    for value, setting in ((max_download_bytes, "max_download_bytes"), (max_unpacked_bytes, "max_unpacked_bytes")):
        check_positive_int(value, setting)
    expected = _expected_digest(sha256)
    bundle_dir = Path(bundle_dir).resolve()
    bundle_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_files(bundle_dir, name, suffixes=(".partial", ".old"))  # what a killed download left
    source = url if re.match(r"^[a-z][a-z0-9+.-]*://", url) else Path(url).resolve().as_uri()
    handle, download = tempfile.mkstemp(dir=bundle_dir, prefix=f".{name}.download.", suffix=".partial")
    staging = None
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(handle, "wb") as stream, urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310
            declared = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            if declared and declared.isdigit() and int(declared) > max_download_bytes:
                raise ValueError(f"{url}: {declared} bytes, more than max_download_bytes {max_download_bytes}; not downloaded.")
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                size += len(chunk)
                if size > max_download_bytes:
                    raise ValueError(f"{url}: more than max_download_bytes {max_download_bytes} bytes; download stopped, not installed.")
                digest.update(chunk)
                stream.write(chunk)
        if digest.hexdigest() != expected:
            raise ValueError(f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {expected}; not installed.")
        _bundle_top(Path(download), url, name, max_unpacked_bytes)
        staging = Path(tempfile.mkdtemp(dir=bundle_dir, prefix=f".{name}.", suffix=".partial"))
        safe_extract(download, staging, max_unpacked_bytes)
        os.chmod(staging / name, umask_mode(0o777))
        target = bundle_dir / name
        install_folder(staging / name, target)
        return target
    except ArchiveError as error:
        raise ValueError(f"{error}; not installed.") from error
    except zipfile.BadZipFile as error:
        raise ValueError(f"{url}: not a zip file ({error}).") from error
    finally:
        Path(download).unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def package_main(argv: list[str] | None = None) -> int:
    """``contextloss package``: zip a bundle as ``<name>_v<version>.zip`` and record its SHA-256 beside it."""
    parser = argparse.ArgumentParser(prog="contextloss package", description="Zip a bundle as <name>_v<version>.zip (top-level <name>/ "
                                     "folder, the layout `python -m monai.bundle download --url` expects) and write its SHA-256 to <zip>.sha256.")
    parser.add_argument("bundle", help="bundle folder, e.g. bundles/roads_2d")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--no-weights", action="store_true", help="leave models/*.pt out")
    args = parser.parse_args(argv)
    archive, digest = package_bundle(args.bundle, args.out, include_weights=not args.no_weights)  # bad input: contextloss's one-line error
    print(f"{archive}\nsha256 {digest}")
    return 0


def download_main(argv: list[str] | None = None) -> int:
    """``contextloss download``: download a bundle zip, verify its SHA-256 and install it atomically."""
    parser = argparse.ArgumentParser(prog="contextloss download", description="Download a bundle zip, verify its SHA-256 and install it atomically.")
    parser.add_argument("--url", required=True, help="the bundle zip (URL or path)")
    parser.add_argument("--sha256", required=True, help="the expected SHA-256: hex digest, .sha256 file or its URL")
    parser.add_argument("--bundle_dir", default="bundles", help="folder that holds the bundles (default: bundles)")
    parser.add_argument("--name", default=None, help="the bundle's name (default: from the zip's name <name>_v<version>.zip)")
    parser.add_argument("--max_download_mb", type=int, default=DEFAULT_MAX_DOWNLOAD_BYTES >> 20,
                        help=f"largest download accepted, MiB (default {DEFAULT_MAX_DOWNLOAD_BYTES >> 20})")
    parser.add_argument("--max_unpacked_mb", type=int, default=DEFAULT_MAX_UNPACKED_BYTES >> 20,
                        help=f"largest unpacked bundle accepted, MiB (default {DEFAULT_MAX_UNPACKED_BYTES >> 20})")
    args = parser.parse_args(argv)
    try:
        print(download_bundle(args.url, args.bundle_dir, args.sha256, name=args.name,
                              max_download_bytes=args.max_download_mb << 20, max_unpacked_bytes=args.max_unpacked_mb << 20))
    except OSError as error:  # the network or the file system; bad input is contextloss's one-line error
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
