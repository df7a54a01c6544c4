"""Any folder of images and labels (and field-of-view masks) as a dataset folder: the generic converter.

Files are given as folders or glob patterns and paired by **case id**: a file's name without its extension and
without one of the suffixes given for its kind (``--label-suffix _manual1`` pairs ``21_manual1.gif`` with the
image ``21.tif``; several suffixes may be given, the longest that matches is removed). A file whose case id has
no partner is reported and refused, or left out with ``skip_unpaired``. Labels are binarised by a stated rule,
never silently: a label with two values maps the lower to 0 and the higher to 1 (one value: 0 is background,
anything else foreground); a label with more values needs ``threshold`` (foreground above it) or
``foreground_values``. Images may be 2D pictures (PNG, JPEG, TIFF, GIF, BMP, PPM), 2D or 3D NIfTI, or multi-page
TIFF stacks (read as ``(rows, cols, pages)``); 2D images are written channel-last (a grey picture as
``(rows, cols, 1)``), RGB(A) pictures keep their colour channels. The spacing is the
NIfTI header's, ``spacing`` when given, else 1 per axis. The test split is a list of case ids, glob patterns
over them, or a seeded fraction; the training cases get seeded folds.

Example (DRIVE, both parts in one dataset folder, the test part as the test split)::

    contextloss prepare folder --images "DRIVE/*/images/*.tif" --labels "DRIVE/*/1st_manual/*.gif" \\
        --masks "DRIVE/*/mask/*.gif" --image-suffix _training _test --label-suffix _manual1 \\
        --mask-suffix _training_mask _test_mask --test-glob "0*" "1*" "20" --out data/drive
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contextloss_monai.checks import check_positive_int
from contextloss_monai.data.dataset_folder import CaseArrays, write_dataset_folder
from contextloss_monai.data.prepare.common import IMAGE_SUFFIXES, file_stem, read_array

__all__ = ["binarize_label", "find_folder_cases", "prepare_folder"]


def _files(source: str | os.PathLike, argument: str) -> list[Path]:
    """The image files of a folder (its readable files, not recursive) or of a glob pattern (``**`` allowed)."""
    source = str(source)
    if Path(source).is_dir():
        found = [p for p in sorted(Path(source).iterdir()) if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)]
    else:
        found = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    if not found:
        raise FileNotFoundError(f"{argument} {source!r} matches no image file (a folder, or a glob pattern such as 'images/*.png').")
    return found


def _case_id(path: Path, suffixes: Sequence[str]) -> str:
    """``path``'s name without its extension and without the longest of ``suffixes`` it ends with."""
    stem = file_stem(path)
    for suffix in sorted(suffixes, key=len, reverse=True):
        if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _by_case(files: list[Path], suffixes: Sequence[str], argument: str) -> dict[str, Path]:
    """``{case id: file}``; two files with one case id are an error naming both."""
    found: dict[str, Path] = {}
    for path in files:
        case = _case_id(path, suffixes)
        if case in found:
            raise ValueError(f"{argument}: {found[case]} and {path} have the same case id {case!r}; give the suffix that tells them apart.")
        found[case] = path
    return found


def find_folder_cases(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    image_suffix: Sequence[str] = (),
    label_suffix: Sequence[str] = (),
    mask_suffix: Sequence[str] = (),
    skip_unpaired: bool = False,
) -> tuple[dict[str, tuple[Path, Path, Path | None]], list[str]]:
    """Pair images, labels and masks by case id.

    Returns:
        ``{case id: (image, label, mask or None)}`` in sorted order, and a report line per file left without a
        partner (empty when every file is paired).

    Raises:
        FileNotFoundError: when a source matches no file.
        ValueError: for two files with one case id, for unpaired files without ``skip_unpaired`` (the report
            in the message), or when no case is complete.
    """
    kinds = {"images": _by_case(_files(images, "images"), image_suffix, "images"),
             "labels": _by_case(_files(labels, "labels"), label_suffix, "labels")}
    if masks is not None:
        kinds["masks"] = _by_case(_files(masks, "masks"), mask_suffix, "masks")
    complete = set.intersection(*(set(found) for found in kinds.values()))
    report = [f"{kind[:-1]} {path} (case {case!r}) has no {' / '.join(k[:-1] for k in kinds if case not in kinds[k])}"
              for kind, found in kinds.items() for case, path in found.items() if case not in complete]
    if report and not skip_unpaired:
        raise ValueError(f"{len(report)} file(s) without a partner (pass skip_unpaired / --skip-unpaired to leave them out, "
                         "or the suffixes that make the names agree):\n  " + "\n  ".join(report))
    if not complete:
        raise ValueError(f"no case has both an image and a label{' and a mask' if masks is not None else ''}: nothing to convert.")
    cases = {case: (kinds["images"][case], kinds["labels"][case], kinds["masks"][case] if masks is not None else None)
             for case in sorted(complete)}
    return cases, report


def binarize_label(label: np.ndarray, source: str, threshold: float | None = None,
                   foreground_values: Sequence[float] | None = None) -> np.ndarray:
    """``label`` as ``uint8`` in ``{0, 1}`` by the stated rule: ``foreground_values`` (those values are 1), else
    ``threshold`` (values above it are 1), else two values (the higher is 1) or one (non-zero is 1).

    Raises:
        ValueError: for a label with more than two values and no rule (naming ``source`` and the values).
    """
    if foreground_values is not None:
        return np.isin(label, np.asarray(foreground_values, dtype=label.dtype if label.dtype.kind in "iu" else float)).astype(np.uint8)
    if threshold is not None:
        return (label > threshold).astype(np.uint8)
    values = np.unique(label)
    if len(values) > 2:
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise ValueError(f"label {source} has {len(values)} values ({shown}): pass threshold (--threshold T: foreground above T) "
                         "or foreground_values (--foreground-values V ...) to say which are foreground.")
    if len(values) == 2:
        return (label == values[1]).astype(np.uint8)
    return (label != 0).astype(np.uint8)


def _spatial(array: np.ndarray, ndim: int) -> np.ndarray:
    """A label or mask with colour channels (a GIF or PNG saved as RGB) as one channel: any channel set."""
    return array[..., :3].any(axis=-1) if array.ndim == ndim + 1 and array.shape[-1] in (3, 4) else array  # alpha ignored


def _spatial_dims(image: np.ndarray, label: np.ndarray) -> int:
    """2 for pictures (also with a label saved in colour, shaped like the colour image), else the label's axes."""
    if label.ndim == 3 and label.shape[-1] in (3, 4) and label.shape == image.shape:
        return 2
    return label.ndim


def _header_spacing(path: Path, ndim: int) -> tuple[float, ...] | None:
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    import nibabel as nib

    return tuple(float(z) for z in nib.load(str(path)).header.get_zooms()[:ndim])


def _test_cases(cases: list[str], test_ids: Sequence[str] | None, test_glob: Sequence[str] | None,
                test_fraction: float | None, seed: int) -> set[str]:
    given = [name for name, value in (("test_ids", test_ids), ("test_glob", test_glob), ("test_fraction", test_fraction)) if value]
    if len(given) != 1:
        raise ValueError(f"give exactly one of test_ids, test_glob, test_fraction (--test-ids, --test-glob, --test-fraction); got {given or 'none'}.")
    if test_ids:
        unknown = sorted(set(test_ids) - set(cases))
        if unknown:
            raise ValueError(f"test_ids {unknown} are not case ids of the paired files (e.g. {cases[:3]}).")
        return set(test_ids)
    if test_glob:
        return {case for case in cases if any(fnmatch.fnmatchcase(case, pattern) for pattern in test_glob)}
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    count = max(1, round(test_fraction * len(cases)))
    return {cases[i] for i in np.random.default_rng(seed).choice(len(cases), size=count, replace=False)}


def prepare_folder(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    out_dir: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    image_suffix: Sequence[str] = (),
    label_suffix: Sequence[str] = (),
    mask_suffix: Sequence[str] = (),
    test_ids: Sequence[str] | None = None,
    test_glob: Sequence[str] | None = None,
    test_fraction: float | None = None,
    threshold: float | None = None,
    foreground_values: Sequence[float] | None = None,
    spacing: Sequence[float] | None = None,
    channels: Sequence[str] | None = None,
    structure: str = "foreground",
    name: str | None = None,
    skip_unpaired: bool = False,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert a folder of images, labels and optional masks into a dataset folder (see the module docstring).

    Args:
        images, labels, masks: a folder or a glob pattern each; ``masks`` (field of view) is optional.
        image_suffix, label_suffix, mask_suffix: name endings removed to get the case id.
        test_ids, test_glob, test_fraction: the test split; exactly one.
        threshold, foreground_values: the binarisation of labels with more than two values.
        spacing: voxel size per spatial axis (default: the NIfTI header, else 1).
        channels: names of the image channels (default: ``channel0``, ...; ``R, G, B`` for colour pictures).
        structure: what the foreground is (``dataset.json``'s label 1: ``vessel``, ``road``...).
        name: the dataset's name in ``dataset.json`` (default: the output folder's name).
        skip_unpaired: leave out files without a partner (they are reported) instead of refusing.
        n_folds, seed: the training cases' folds.
        overwrite: replace a non-empty ``out_dir``.

    Returns:
        the path of ``dataset.json``.

    Raises:
        FileNotFoundError: a source that matches no file.
        FileExistsError: a non-empty ``out_dir`` without ``overwrite``.
        ValueError: unpaired files, an unreadable file, an image and label (or mask) of different shapes, a
            label that needs a rule, a split that leaves no training or no test case, fewer training cases
            than folds — each naming the file or the argument. Nothing is written then.
    """
    check_positive_int(n_folds, "n_folds")
    cases, report = find_folder_cases(images, labels, masks, image_suffix, label_suffix, mask_suffix, skip_unpaired)
    if report and progress:
        print(f"left out {len(report)} unpaired file(s):\n  " + "\n  ".join(report))
    ids = list(cases)
    test = _test_cases(ids, test_ids, test_glob, test_fraction, seed)
    train = [case for case in ids if case not in test]
    if not train or not test:
        raise ValueError(f"the test split leaves {len(train)} training and {len(test)} test cases of {len(ids)}; both need at least one.")
    if len(train) < n_folds:
        raise ValueError(f"{len(train)} training cases cannot fill n_folds {n_folds}; lower n_folds (--folds).")
    first = read_array(cases[ids[0]][0])
    ndim = _spatial_dims(first, read_array(cases[ids[0]][1]))
    if ndim not in (2, 3):
        raise ValueError(f"label {cases[ids[0]][1]} has {ndim} axes; expected a 2D picture or a 3D volume.")

    def load(case: str):
        image_path, label_path, mask_path = cases[case]

        def read() -> CaseArrays:
            image = read_array(image_path)
            label = _spatial(read_array(label_path), ndim)
            if image.shape[:ndim] != label.shape or image.ndim > ndim + 1:
                raise ValueError(f"case {case}: image {image_path} has shape {image.shape} but label {label_path} has shape {label.shape}; "
                                 "expected the label's shape to be the image's spatial shape.")
            if image.ndim != first.ndim or image.shape[ndim:] != first.shape[ndim:]:
                raise ValueError(f"case {case}: image {image_path} has shape {image.shape}, unlike {cases[ids[0]][0]} ({first.shape}): "
                                 "every image needs the same number of axes and channels.")
            mask = None
            if mask_path is not None:
                mask = _spatial(read_array(mask_path), ndim)
                if mask.shape != label.shape:
                    raise ValueError(f"case {case}: mask {mask_path} has shape {mask.shape}, expected the label's {label.shape}.")
                mask = (mask > 0).astype(np.uint8)
            voxel = tuple(spacing) if spacing is not None else _header_spacing(image_path, ndim) or (1.0,) * ndim
            if len(voxel) != ndim:
                raise ValueError(f"spacing {list(voxel)} has {len(voxel)} values; the images have {ndim} spatial axes.")
            label = binarize_label(label, str(label_path), threshold, foreground_values)
            if ndim == 2 and image.ndim == 2:  # 2D images are stored channel-last, as the 2D bundles read them
                image = image[..., None]
            return CaseArrays(image, label, voxel, mask)

        return read

    n_channels = first.shape[-1] if first.ndim == ndim + 1 else 1
    if channels is None:
        channels = ["R", "G", "B", "A"][:n_channels] if n_channels in (3, 4) else [f"channel{i}" for i in range(n_channels)]
    if len(channels) != n_channels:
        raise ValueError(f"channels names {len(channels)} channels, the images have {n_channels}.")
    return write_dataset_folder(
        out_dir, [(c, load(c)) for c in train], [(c, load(c)) for c in sorted(test)], n_folds=n_folds, seed=seed,
        channels=list(channels), structure=structure, overwrite=overwrite, progress=progress, desc="prepare folder",
        name=name or Path(out_dir).name, description=f"converted from {images} and {labels}" + (f" with masks {masks}" if masks else ""),
    )
