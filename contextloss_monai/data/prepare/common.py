"""Reading the public archives' files and writing them as a dataset folder (shared by the converters)."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contextloss_monai.data.dataset_folder import CaseArrays, check_binary_label, write_dataset_folder

__all__ = ["IMAGE_SUFFIXES", "Case", "check_root", "file_stem", "find_files", "pair_by_stem", "read_array", "write_prepared_dataset"]

_NIFTI = (".nii", ".nii.gz")
_TIFF = (".tif", ".tiff")
_PICTURE = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm")
#: the file endings :func:`read_array` reads (case-insensitive), the double ending first
IMAGE_SUFFIXES = (".nii.gz", ".nii") + _TIFF + _PICTURE


@dataclass
class Case:
    """One image of a real dataset: its channel files (one file, or one per channel), label and FOV mask."""

    name: str
    images: list[Path]
    label: Path
    mask: Path | None = None
    extra: dict = field(default_factory=dict)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a NumPy array with spatial axes first.

    NIfTI files come as stored; 2D pictures (PNG, JPEG, GIF, single-page TIFF) as ``(rows, cols[, RGB])``;
    multi-page TIFF stacks (``(pages, rows, cols)`` on disk) as ``(rows, cols, pages)`` so that the
    slice axis is last, as in NIfTI.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file cannot be read or its format is not supported (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist.")
    name = path.name.lower()
    try:
        if name.endswith(_NIFTI):
            import nibabel as nib

            return np.asanyarray(nib.load(str(path)).dataobj)
        if name.endswith(_TIFF):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                array = tif.asarray()
                pages = len(tif.pages)
            return np.moveaxis(array, 0, -1) if pages > 1 and array.ndim == 3 else array
        if name.endswith(_PICTURE):
            import imageio.v3 as iio

            return np.asarray(iio.imread(str(path), index=0) if name.endswith(".gif") else iio.imread(str(path)))  # a GIF's first frame
    except Exception as error:  # any reader failure: name the file
        raise ValueError(f"cannot read image file {path}: {error}") from error
    raise ValueError(f"image file {path} has an unsupported format; expected NIfTI, TIFF, PNG or JPEG.")


def check_root(root: str | os.PathLike, argument: str = "root") -> Path:
    """``root`` as a ``Path``; a ``FileNotFoundError`` naming ``argument`` when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{argument} {root} is not an existing folder.")
    return root


def find_files(root: Path, pattern: str, what: str) -> list[Path]:
    """Files under ``root`` matching the glob ``pattern`` (``**`` allowed), sorted; an error naming
    ``what`` and the pattern when nothing matches."""
    files = sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True) if Path(p).is_file())
    if not files:
        raise FileNotFoundError(f"no {what} files match {pattern!r} under {root}.")
    return files


def file_stem(path: Path) -> str:
    """``path``'s name without its image ending (``.nii.gz`` whole), or without its last suffix for other files."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _load_case(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    channels = [read_array(p) for p in case.images]
    if len(channels) == 1:
        image = channels[0]
    else:
        shapes = {c.shape for c in channels}
        if len(shapes) > 1:
            raise ValueError(f"case {case.name}: channel files {[str(p) for p in case.images]} have different shapes {sorted(shapes)}.")
        image = np.stack(channels, axis=-1)
    label = read_array(case.label)
    spatial = image.shape[: label.ndim]
    if label.ndim not in (2, 3) or spatial != label.shape or image.ndim > label.ndim + 1:
        raise ValueError(
            f"case {case.name}: image {case.images[0]} has shape {image.shape} but label {case.label} has shape "
            f"{label.shape}; expected the label's shape to be the image's spatial shape."
        )
    label = check_binary_label(label, str(case.label))
    mask = None
    if case.mask is not None:
        mask = read_array(case.mask)
        mask = mask.any(axis=-1) if mask.ndim == label.ndim + 1 else mask
        if mask.shape != label.shape:
            raise ValueError(f"case {case.name}: mask {case.mask} has shape {mask.shape}, expected {label.shape}.")
        mask = (mask > 0).astype(np.uint8)
    return image, label, mask


def write_prepared_dataset(
    train: Sequence[Case],
    test: Sequence[Case],
    out_dir: str | os.PathLike,
    spacing: Sequence[float],
    name: str,
    description: str,
    channels: Sequence[str],
    structure: str,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert ``train`` and ``test`` cases into a dataset folder (NIfTI, binary labels, 5 folds).

    Every file is read and checked before anything is moved into ``out_dir``: a failure leaves no
    half-written folder behind.

    Raises:
        ValueError: when ``train`` or ``test`` is empty, ``train`` has fewer cases than ``n_folds``, or a
            case fails its checks (unreadable file, shape mismatch, non-binary label).
    """
    if not train or not test:
        raise ValueError(f"{name}: nothing to convert (train: {len(train)} cases, test: {len(test)} cases).")
    if len(train) < n_folds:
        raise ValueError(f"{name}: {len(train)} training cases cannot fill {n_folds} folds.")

    def load(case: Case) -> Callable[[], CaseArrays]:
        def read() -> CaseArrays:
            image, label, mask = _load_case(case)
            return CaseArrays(image, label, spacing, mask, item=dict(case.extra))

        return read

    return write_dataset_folder(
        out_dir, [(c.name, load(c)) for c in train], [(c.name, load(c)) for c in test], n_folds=n_folds, seed=seed,
        channels=channels, structure=structure, overwrite=overwrite, progress=progress, desc=f"prepare {name}",
        name=name, description=description,
    )


def pair_by_stem(images: list[Path], labels: list[Path], strip: Sequence[str] = ()) -> list[tuple[Path, Path]]:
    """Pair image and label files whose names agree after removing the extension and any of ``strip``.

    Raises:
        FileNotFoundError: when an image has no label (naming the image).
    """

    def key(path: Path) -> str:
        stem = file_stem(path)
        for text in strip:
            stem = stem.replace(text, "")
        return stem

    by_key = {key(p): p for p in labels}
    pairs = []
    for image in images:
        if key(image) not in by_key:
            raise FileNotFoundError(f"no label file for image {image} (looked for a label named like {key(image)!r}).")
        pairs.append((image, by_key[key(image)]))
    return pairs
