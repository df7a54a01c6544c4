"""Small helpers every layer uses: the one conversion of tensors to NumPy, the one way files and folders are written
(atomically), CSV writing and reading, the rank test."""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torch.distributed as dist
from monai.config import NdarrayOrTensor

__all__ = ["atomic_file", "atomic_path", "batch_filenames", "content_key", "install_folder", "is_main_process", "merge_csv_rows", "read_csv_rows",
           "remove_partial_files", "save_atomic", "staging_folder", "to_numpy", "umask_mode", "write_csv_rows", "write_text_atomic"]


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the permissions a plainly created file or folder would get."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def to_numpy(x: NdarrayOrTensor) -> np.ndarray:
    """``x`` as a NumPy array: a tensor on any device is detached and moved to the host (the one place where
    tensors become NumPy); an array or sequence is returned as an array."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:  # NumPy has no bfloat16
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def content_key(mask: np.ndarray) -> tuple:
    """A cache key for a boolean array's content: its shape and a 128-bit hash of its packed bits."""
    return mask.shape, hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest()


def batch_filenames(batch, key: str) -> list[str | None]:
    """The ``filename_or_obj`` of every image under ``key`` in an engine's batch (a collated dictionary or a
    decollated list), one entry per image, ``None`` where an item has no such metadata."""
    names: list[str | None] = []
    for item in batch if isinstance(batch, list) else [batch]:
        value = item.get(key) if isinstance(item, dict) else None
        found = getattr(value, "meta", {}).get("filename_or_obj", [])
        found = [found] if isinstance(found, str) else [str(n) for n in found]
        names += found or [None]
    return names


def is_main_process() -> bool:
    """Rank 0 of ``torch.distributed``, or not distributed."""
    return not dist.is_initialized() or dist.get_rank() == 0


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """The one way this package writes a file: yield a temporary path beside ``path`` (hidden,
    ``.<name>.<random>.partial<suffix>``) for the block to write, then rename it into place when the block ends
    without error; remove it otherwise. Readers (and a resumed run) see the previous file or the complete new
    one, never a part of it, whenever the writing process dies; :func:`remove_partial_files` clears what a
    killed writer left. The file gets the permissions the umask gives.

    Args:
        path: the file to write (its folder is created).
        suffix: the temporary name's ending, for writers that choose the format by it (``".nii.gz"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{suffix}")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, umask_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | os.PathLike, binary: bool = True) -> Iterator[IO]:
    """A stream to write ``path`` through :func:`atomic_path`, flushed to disk before the rename."""
    with atomic_path(path) as temporary, open(temporary, "wb" if binary else "w", **({} if binary else {"newline": ""})) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


@contextmanager
def staging_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """The folder counterpart of :func:`atomic_path`: yield a hidden temporary folder beside ``out_dir``
    (``.<name>.<random>.partial``) that :func:`install_folder` puts at ``out_dir`` when the block succeeds.

    A failure leaves nothing half-written: the temporary folder is removed and ``out_dir`` untouched. A
    process killed outright leaves its temporary folder; the next write of ``out_dir`` removes it. The
    finished folder has the permissions the umask gives a new folder.

    Raises:
        FileExistsError: when ``out_dir`` exists and is not a folder, or is not empty and ``overwrite`` is false.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir {out_dir} exists and is not a folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"out_dir {out_dir} is not empty; choose another folder or pass overwrite=True (--overwrite).")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_partial_files(out_dir.parent, glob.escape(out_dir.name), suffixes=(".partial", ".old"))  # left by a writer that was killed
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        yield staging
        os.chmod(staging, umask_mode(0o777))  # mkdtemp's folder is private; the result follows the umask
        install_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the old out_dir after a swap, or the failed attempt


def _exchange(staged: Path, target: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` where that is not available."""
    if sys.platform != "linux":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(staged), at_fdcwd, os.fsencode(target), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a file system without exchange
        return False
    raise OSError(error, os.strerror(error), str(target))


def install_folder(staged: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the folder ``staged`` at ``target`` in one rename: swapped with an existing ``target`` (whose old copy
    is then at ``staged``, for the caller to remove), renamed where there is none; so there is no moment without
    a complete folder at ``target``. Without an atomic swap (not Linux), two renames.

    Raises:
        ValueError: when ``target`` exists and is a link or not a folder (it is not replaced).
    """
    staged, target = Path(staged), Path(target)
    if not target.exists() and not target.is_symlink():
        staged.rename(target)
        return
    if target.is_symlink() or not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder; not replaced.")
    if not _exchange(staged, target):
        aside = staged.with_name(staged.name + ".old")
        target.rename(aside)
        staged.rename(target)
        aside.rename(staged)


def remove_partial_files(folder: str | os.PathLike, name_pattern: str, suffixes: Sequence[str] = (".partial",)) -> None:
    """Remove what a killed atomic writer left in ``folder`` for the names matching ``name_pattern`` (a glob):
    the hidden ``.<name>.*.partial`` files of :func:`atomic_file` and the staging folders named the same way."""
    for leftover in Path(folder).glob(f".{name_pattern}.*"):
        if not leftover.name.endswith(tuple(suffixes)):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_file`); return the path."""
    with atomic_file(path, binary=False) as stream:
        stream.write(text)
    return Path(path)


def save_atomic(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` of ``obj`` to ``path`` atomically (:func:`atomic_file`); return the path."""
    with atomic_file(path) as stream:
        torch.save(obj, stream)
    return Path(path)


def write_csv_rows(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """Write ``rows`` as a CSV whose columns are the union of the rows' keys in first-seen order (rows that
    lack a column leave it empty), atomically (:func:`write_text_atomic`); return the path."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, stream.getvalue())


def read_csv_rows(path: str | os.PathLike, required_columns: Sequence[str] = ()) -> list[dict]:
    """The rows of the CSV at ``path`` as dictionaries of strings (column -> text), the counterpart of
    :func:`write_csv_rows`; a column a row leaves empty reads as ``""``.

    Args:
        path: the CSV file.
        required_columns: columns its header must name (checked on the header, so a table without rows is
            checked too); a file with no header at all (what :func:`write_csv_rows` writes for no rows) has no rows.

    Raises:
        ValueError: when the header lacks one of ``required_columns`` (naming the file and the columns).
    """
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    missing = [c for c in required_columns if reader.fieldnames and c not in reader.fieldnames]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}: expected a table with {list(required_columns)}.")
    return rows


def merge_csv_rows(path: str | os.PathLike, rows: Sequence[dict], key_columns: Sequence[str]) -> list[dict]:
    """``rows`` added to those already stored in the CSV at ``path`` (read back as strings): a stored row whose
    ``key_columns`` match a new row's is replaced by it in place, new keys follow in order; without a file,
    ``rows``. Keys compare as text, so ``0`` and ``"0"`` are one key. Nothing is written.

    Raises:
        ValueError: when the stored CSV's header lacks one of ``key_columns`` (:func:`read_csv_rows`).
    """
    path = Path(path)
    if not path.is_file():
        return list(rows)
    stored = read_csv_rows(path, key_columns)

    def key(row: dict) -> tuple[str, ...]:
        return tuple(str(row[c]) for c in key_columns)

    fresh = {key(row): row for row in rows}
    merged = [fresh.pop(key(row), row) for row in stored]
    return merged + list(fresh.values())
