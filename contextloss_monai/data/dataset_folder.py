"""The dataset folder every bundle reads: NIfTI images and labels plus a Decathlon-style datalist.

Layout (nnU-Net / Medical Segmentation Decathlon naming)::

    DIR/
      dataset.json          # datalist: "training" (each item with a "fold" 0..4) and "test"
      imagesTr/CASE.nii.gz  labelsTr/CASE.nii.gz  [masksTr/CASE.nii.gz]
      imagesTs/CASE.nii.gz  labelsTs/CASE.nii.gz  [masksTs/CASE.nii.gz]

Images are stored channel-last: 2D RGB as ``(H, W, 3)``, 3D multi-channel as ``(X, Y, Z, C)``; a
single-channel 3D volume as ``(X, Y, Z)``. Labels are ``uint8`` in ``{0, 1}``. The NIfTI header holds the
voxel spacing in millimetres. ``dataset.json`` loads with MONAI's ``load_decathlon_datalist``; the
helpers here add what a bundle needs on top: a clear error for a missing datalist or missing files and
the train / validation split of one cross-validation fold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contextloss_monai.utils import staging_folder

__all__ = [
    "DATALIST_NAME",
    "CaseArrays",
    "assign_folds",
    "case_id",
    "check_binary_label",
    "check_case_ids",
    "check_dataset_items",
    "load_datalist",
    "save_nifti",
    "staging_folder",
    "write_case",
    "write_datalist",
    "write_dataset_folder",
]

DATALIST_NAME = "dataset.json"
_ROLES = ("train", "val", "training", "test")


def save_nifti(array: np.ndarray, path: str | os.PathLike, spacing: Sequence[float]) -> Path:
    """Write ``array`` as a compressed NIfTI file whose affine holds ``spacing`` (mm) on the diagonal.

    Args:
        array: spatial axes first, an optional channel axis last (``len(spacing)`` spatial axes).
        path: output file, ``.nii.gz``.
        spacing: voxel size per spatial axis in millimetres.

    Returns:
        the path written.
    """
    import nibabel as nib

    spacing = [float(s) for s in spacing]
    affine = np.diag(spacing + [1.0] * (4 - len(spacing)))
    image = nib.Nifti1Image(np.asarray(array), affine)
    image.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_case(
    folder: str | os.PathLike,
    part: str,
    case: str,
    image: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float],
    mask: np.ndarray | None = None,
) -> dict:
    """Write one case as ``images<part>/``, ``labels<part>/`` (and ``masks<part>/``) NIfTI files under
    ``folder`` (``part`` is ``"Tr"`` or ``"Ts"``); return its datalist item with paths relative to ``folder``."""
    folder = Path(folder)
    arrays = {"image": image, "label": label, "mask": mask}
    return {
        key: str(save_nifti(array, folder / f"{key}s{part}" / f"{case}.nii.gz", spacing).relative_to(folder))
        for key, array in arrays.items()
        if array is not None
    }


def check_binary_label(label: np.ndarray, source: str) -> np.ndarray:
    """Return ``label`` as ``uint8`` in ``{0, 1}``; a label with two values is mapped ``min -> 0, max -> 1``.

    Raises:
        ValueError: when ``label`` has more than two distinct values (naming ``source``).
    """
    values = np.unique(label)
    if len(values) > 2:
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise ValueError(f"label {source} must be binary (two values), found {len(values)} values: {shown}.")
    if len(values) == 2:
        return (label == values[1]).astype(np.uint8)
    return (label > 0).astype(np.uint8) if values.size and values[0] > 0 else np.zeros(label.shape, np.uint8)


def assign_folds(n_items: int, n_folds: int = 5, seed: int = 0) -> list[int]:
    """Fold index per item for ``n_folds``-fold cross-validation: a seeded shuffle dealt round-robin, so
    fold sizes differ by at most one and every item is in exactly one fold."""
    order = np.random.default_rng(seed).permutation(n_items)
    folds = np.empty(n_items, dtype=int)
    folds[order] = np.arange(n_items) % n_folds
    return folds.tolist()


def write_datalist(folder: str | os.PathLike, training: list[dict], test: list[dict], **info: Any) -> Path:
    """Write ``dataset.json`` (paths relative to ``folder``) with ``training``, ``test`` and any extra
    descriptive keys (``name``, ``description``, ``spacing``, ``channels``, ``labels``...)."""
    content = dict(info)
    content.update(numTraining=len(training), numTest=len(test), training=training, test=test)
    path = Path(folder) / DATALIST_NAME
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


@dataclass
class CaseArrays:
    """One case for :func:`write_dataset_folder`: its arrays, voxel spacing, extra datalist keys and metadata."""

    image: np.ndarray
    label: np.ndarray
    spacing: Sequence[float]
    mask: np.ndarray | None = None
    item: dict = field(default_factory=dict)
    metadata: dict | None = None


def write_dataset_folder(
    out_dir: str | os.PathLike,
    train: Sequence[tuple[str, Callable[[], CaseArrays]]],
    test: Sequence[tuple[str, Callable[[], CaseArrays]]],
    *,
    n_folds: int,
    seed: int,
    channels: Sequence[str],
    structure: str,
    overwrite: bool = False,
    progress: bool = True,
    desc: str = "dataset",
    metadata_file: str | None = None,
    **info: Any,
) -> Path:
    """Write a dataset folder from named case loaders, all or nothing: every case is loaded (``load()``) and
    written into a staging folder beside ``out_dir`` that replaces it only at the end; training items get a
    ``fold`` (:func:`assign_folds`), ``dataset.json`` the datalist with ``channels``, ``labels`` and ``info``.
    The cases' ``metadata`` go to ``metadata_file`` when it is given. The callers check their arguments.

    Returns:
        the path of ``dataset.json``.
    """
    from tqdm.auto import tqdm

    folds = assign_folds(len(train), n_folds, seed)
    parts: dict[str, list[dict]] = {"Tr": [], "Ts": []}
    metadata: dict[str, dict] = {}
    spacing: Sequence[float] = ()
    with staging_folder(out_dir, overwrite=overwrite) as staging:
        jobs = [(name, load, "Tr", i) for i, (name, load) in enumerate(train)] + [(name, load, "Ts", None) for name, load in test]
        for name, load, part, index in tqdm(jobs, desc=desc, unit="case", disable=not progress):
            case = load()
            spacing = case.spacing
            item = write_case(staging, part, name, case.image, case.label, case.spacing, case.mask)
            item.update(case.item)
            if index is not None:
                item["fold"] = folds[index]
            parts[part].append(item)
            if case.metadata is not None:
                metadata[name] = case.metadata
        if metadata_file is not None:
            (staging / metadata_file).write_text(json.dumps(metadata, indent=2) + "\n")
        write_datalist(
            staging,
            parts["Tr"],
            parts["Ts"],
            **info,
            tensorImageSize=f"{len(spacing)}D",
            spacing=[float(v) for v in spacing],
            channels={str(i): c for i, c in enumerate(channels)},
            labels={"0": "background", "1": structure},
            n_folds=n_folds,
        )
    return Path(out_dir) / DATALIST_NAME


def case_id(path: str | os.PathLike) -> str:
    """The case id of an image or label file: its name without the image suffixes (``.nii.gz``, ``.nii``...)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".tif", ".tiff", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_datalist(datalist: Path) -> dict:
    try:
        content = json.loads(datalist.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{datalist} is not a readable JSON datalist ({error}).") from error
    if not isinstance(content, dict):
        raise ValueError(f"{datalist} must hold a JSON object with 'training' and 'test' lists.")
    return content


def check_case_ids(datalist: str | os.PathLike, content: dict | None = None) -> None:
    """Refuse a datalist whose cases repeat: an image or case id listed twice in ``training`` or in ``test``, or
    a case in both (a test case seen in training makes every test figure a training figure).

    Args:
        datalist: the ``dataset.json`` file.
        content: its parsed content, where the caller has read it already.

    Raises:
        ValueError: naming the datalist, the list(s) and the case ids.
    """
    content = _read_datalist(Path(datalist)) if content is None else content
    ids: dict[str, list[str]] = {}
    for key in ("training", "test"):
        entries = content.get(key, [])
        if not isinstance(entries, list):
            raise ValueError(f"{datalist}: {key!r} must be a list of items, got {type(entries).__name__}.")
        ids[key] = [case_id(e["image"] if isinstance(e, dict) and "image" in e else str(e)) for e in entries]
        repeated = sorted({i for i in ids[key] if ids[key].count(i) > 1})
        if repeated:
            raise ValueError(f"{datalist}: the {key!r} list names case(s) {repeated[:5]} more than once; each case once.")
    both = sorted(set(ids["training"]) & set(ids["test"]))
    if both:
        raise ValueError(
            f"{datalist}: case(s) {both[:5]} are in both the 'training' and the 'test' list; a test case must not be "
            "trained on (remove it from one list)."
        )


def load_datalist(
    dataset_dir: str | os.PathLike, role: str = "training", fold: int | None = None, allow_outside: bool = False
) -> list[dict]:
    """Items of the dataset folder's datalist with absolute paths, checked to exist and, unless
    ``allow_outside``, to lie inside ``dataset_dir`` (no absolute paths or ``..`` leading out of it).

    Args:
        dataset_dir: the folder holding ``dataset.json``.
        role: ``"training"`` (all training items), ``"train"`` (training items not in ``fold``), ``"val"``
            (training items in ``fold``) or ``"test"``.
        fold: the cross-validation fold for ``"train"`` / ``"val"``; ``None`` there means: train on all
            training items and validate on the test list (the synthetic default has no held-out need).
        allow_outside: accept files outside ``dataset_dir`` (a datalist that points at shared storage).

    Returns:
        a list of dictionaries (``image``, ``label`` and optional ``mask``, ``fold``) as MONAI datasets take.

    Raises:
        FileNotFoundError: when ``dataset_dir``, its ``dataset.json`` or a file it names is missing.
        ValueError: for an unknown ``role``, a ``fold`` that no item has, an empty list, a file outside
            ``dataset_dir`` without ``allow_outside``, or case ids that repeat or occur in both lists
            (:func:`check_case_ids`).
    """
    from monai.data import load_decathlon_datalist

    if role not in _ROLES:
        raise ValueError(f"role must be one of {_ROLES}, got {role!r}.")
    dataset_dir = Path(dataset_dir)
    datalist = dataset_dir / DATALIST_NAME
    if not datalist.is_file():
        raise FileNotFoundError(
            f"dataset_dir {dataset_dir} has no {DATALIST_NAME}; create one with contextloss make-synthetic or a "
            "contextloss prepare converter."
        )
    content = _read_datalist(datalist)
    check_case_ids(datalist, content)
    key = "test" if role == "test" or (role == "val" and fold is None) else "training"
    if not content.get(key):  # MONAI's loader fails on an empty test list with an IndexError
        raise ValueError(f"the {role!r} list of {datalist} is empty (no {key!r} items).")
    items = load_decathlon_datalist(str(datalist), is_segmentation=True, data_list_key=key, base_dir=str(dataset_dir))
    if fold is not None and role in ("train", "val"):
        folds = {item.get("fold") for item in items}
        if fold not in folds:
            raise ValueError(f"fold {fold} does not occur in {datalist} (folds present: {sorted(f for f in folds if f is not None)}).")
        items = [item for item in items if (item["fold"] == fold) == (role == "val")]
    if not items:
        raise ValueError(f"the {role!r} list of {datalist} is empty.")
    root = dataset_dir.resolve()
    for item in items:
        for name in ("image", "label", "mask"):
            if name not in item:
                continue
            path = Path(item[name])
            if not allow_outside and not path.resolve().is_relative_to(root):
                raise ValueError(
                    f"{datalist} names a {name} file outside dataset_dir {root}: {item[name]}; datalist paths must be "
                    "relative and stay inside the folder (pass allow_outside=True / --allow_outside_dataset true to "
                    "accept it)."
                )
            if not path.is_file():
                raise FileNotFoundError(f"{datalist} names a missing {name} file: {item[name]}")
    return items


def check_dataset_items(items: Sequence[dict], in_channels: int) -> None:
    """Check every item before training or evaluating: each file is readable NIfTI, the image and label have
    the same spatial shape, the label holds only 0 and 1, the image has ``in_channels`` channels (channel-last
    on disk, as :func:`write_case` stores them) and no NaN or infinite value; a field-of-view ``mask`` is
    readable and has the image's spatial shape. An item without a ``label`` (inference) has its image (and
    mask) checked for readability, finite values and shape.

    Raises:
        ValueError: naming the file and what is wrong with it.
    """
    import nibabel as nib

    def read(path: str) -> np.ndarray:
        try:
            return np.asanyarray(nib.load(path).dataobj)
        except Exception as error:  # noqa: BLE001 - any reader failure is a bad file: name it
            raise ValueError(f"cannot read {path} as NIfTI ({type(error).__name__}: {error}).") from error

    for item in items:
        image = read(item["image"])
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise ValueError(f"image {item['image']} holds NaN or infinite values.")
        if "mask" in item:
            mask = read(item["mask"])
            if mask.ndim not in (2, 3) or image.shape[: mask.ndim] != mask.shape or image.ndim > mask.ndim + 1:
                raise ValueError(
                    f"image {item['image']} has shape {image.shape} but mask {item['mask']} has shape {mask.shape}: the "
                    "field-of-view mask's shape must be the image's spatial shape (image channel-last)."
                )
        if "label" not in item:
            continue
        label = read(item["label"])
        if label.ndim not in (2, 3) or image.shape[: label.ndim] != label.shape or image.ndim > label.ndim + 1:
            raise ValueError(
                f"image {item['image']} has shape {image.shape} but label {item['label']} has shape {label.shape}: the "
                "label's shape must be the image's spatial shape (image channel-last)."
            )
        channels = image.shape[label.ndim] if image.ndim == label.ndim + 1 else 1
        if channels != in_channels:
            raise ValueError(f"image {item['image']} has {channels} channel(s), the network's in_channels is {in_channels}.")
        values = np.unique(label)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                f"label {item['label']} must hold only 0 and 1, found {values[:6].tolist()}; convert it (a {{0, 255}} "
                "mask: label > 0) or prepare the data with contextloss prepare."
            )
