"""Unpacking archives that come from outside (a downloaded bundle zip, an upload to the MONAI Label server).

Every member is treated as hostile and checked before anything is written: no absolute path, no ``..``, no
backslash or drive letter, no symbolic or hard link, no device, FIFO or other special file, at most
``max_members`` members and ``max_bytes`` bytes unpacked in all — counted while copying, so a member that
declares a small size and inflates to a large one is stopped too. Members are written one by one under the
destination folder, which the caller makes and removes (a refused archive leaves only what the caller cleans).
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = ["ArchiveError", "DEFAULT_MAX_MEMBERS", "archive_members", "safe_extract"]

#: more members than any bundle or image series holds
DEFAULT_MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive refused: a hostile or malformed member, or a size or count over the cap."""


def _check_name(name: str, source: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if (not name or path.is_absolute() or ".." in path.parts or "\\" in name or ":" in path.parts[0]
            or any(ord(c) < 32 for c in name)):
        raise ArchiveError(f"{source}: member {name!r} would be written outside the destination folder; refused.")
    return path


def _entries(archive: str | os.PathLike, source: str) -> Iterator[tuple[str, str, int, Callable[[], IO[bytes] | None]]]:
    """``(name, kind, declared size, open)`` of each member of a zip or tar archive, in order; ``kind`` is
    ``"file"``, ``"dir"`` or ``"other"`` (links, devices, FIFOs); ``open()`` reads a file member while the
    iteration is on that member."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                mode = (info.external_attr >> 16) & 0o170000
                kind = "other" if mode not in (0, 0o100000, 0o040000) else "dir" if info.is_dir() else "file"
                yield info.filename, kind, info.file_size, lambda info=info: zf.open(info)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf:
                kind = "file" if member.isreg() else "dir" if member.isdir() else "other"
                yield member.name, kind, member.size, lambda member=member: tf.extractfile(member)
    else:
        raise ArchiveError(f"{source}: not a zip or tar archive.")


def _checked_entries(archive: str | os.PathLike, source: str, max_members: int):
    """:func:`_entries`, each checked: a plain relative name, a file or folder, at most ``max_members`` of them."""
    for count, (name, kind, size, opener) in enumerate(_entries(archive, source), start=1):
        if count > max_members:
            raise ArchiveError(f"{source}: more than the {max_members} members allowed.")
        _check_name(name, source)
        if kind == "other":
            raise ArchiveError(f"{source}: member {name!r} is a link or special file; refused.")
        yield name, kind, size, opener


def archive_members(archive: str | os.PathLike, max_bytes: int, max_members: int = DEFAULT_MAX_MEMBERS) -> list[tuple[str, int]]:
    """The ``(name, declared size)`` of each regular file in a zip or tar archive, after checking every member.

    Raises:
        ArchiveError: naming the archive and the member: a path that leaves the folder, a link or special file,
            more than ``max_members`` members or more than ``max_bytes`` declared bytes; or not a zip or tar file.
    """
    source = str(archive)
    files = [(name, size) for name, kind, size, _ in _checked_entries(archive, source, max_members) if kind == "file"]
    total = sum(size for _, size in files)
    if total > max_bytes:
        raise ArchiveError(f"{source}: unpacks to {total} bytes, more than the {max_bytes} allowed (raise the limit to accept it).")
    return files


def _copy_capped(stream: IO[bytes], target: Path, budget: int, source: str, name: str) -> int:
    written = 0
    with target.open("xb") as out:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            written += len(chunk)
            if written > budget:
                raise ArchiveError(f"{source}: member {name!r} unpacks past the size allowed; refused.")
            out.write(chunk)
    return written


def safe_extract(archive: str | os.PathLike, destination: str | os.PathLike, max_bytes: int,
                 max_members: int = DEFAULT_MAX_MEMBERS) -> list[Path]:
    """Unpack a zip or tar archive into ``destination`` (created) after :func:`archive_members` accepted it.

    Regular files and folders only, each written under ``destination`` (never through a link: the folder is
    new and no member is a link), with the process's umask; at most ``max_bytes`` bytes in all.

    Returns:
        the files written.

    Raises:
        ArchiveError: as :func:`archive_members`, or when the members unpack to more than declared.
    """
    source = str(archive)
    archive_members(archive, max_bytes, max_members)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    budget, written = max_bytes, []
    for name, kind, _, opener in _checked_entries(archive, source, max_members):
        target = (root / name).resolve()
        if not target.is_relative_to(root):
            raise ArchiveError(f"{source}: member {name!r} would be written outside the destination folder; refused.")
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        stream = opener()
        if stream is None:  # only regular files get here
            raise ArchiveError(f"{source}: member {name!r} has no content.")
        with stream:
            budget -= _copy_capped(stream, target, budget, source, name)
        written.append(target)
    return written
