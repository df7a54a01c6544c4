"""A dataset folder of this project (``dataset.json`` with folds, channel-last NIfTI) as an nnU-Net v2 raw
dataset, so that the same data trains both ways."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from contextloss_monai.data.dataset_folder import DATALIST_NAME, check_dataset_items, load_datalist
from contextloss_monai.utils import staging_folder, write_text_atomic

__all__ = ["convert_dataset_folder", "nnunet_dataset_name"]

#: nnU-Net's raw file ending for every converted file (its SimpleITK reader takes 2D and 3D NIfTI)
FILE_ENDING = ".nii.gz"


def nnunet_dataset_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_Name`` as nnU-Net requires it (three-digit id 1..999, letters, digits and ``_`` in the name).

    Raises:
        ValueError: for an id outside 1..999 or an empty name after removing other characters.
    """
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool) or not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id must be an integer in 1..999 (nnU-Net's three digits), got {dataset_id!r}.")
    clean = re.sub(r"[^A-Za-z0-9_]", "", name.replace("-", "_").replace(" ", "_"))
    if not clean:
        raise ValueError(f"dataset name must contain letters or digits, got {name!r}.")
    return f"Dataset{dataset_id:03d}_{clean}"


def _case_name(path: str) -> str:
    return Path(path).name.split(".")[0]


def _write_case(item: dict, images: Path, labels: Path, n_channels: int, spatial_dims: int) -> str:
    """One image as ``<case>_XXXX.nii.gz`` per channel and its label as ``<case>.nii.gz``, with the image's affine."""
    case = _case_name(item["image"])
    image = nib.load(item["image"])
    data = np.asanyarray(image.dataobj)
    data = data[..., None] if data.ndim == spatial_dims else data
    for channel in range(n_channels):
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data[..., channel]), image.affine), images / f"{case}_{channel:04d}{FILE_ENDING}")
    label = np.asanyarray(nib.load(item["label"]).dataobj).astype(np.uint8)
    nib.save(nib.Nifti1Image(label, image.affine), labels / f"{case}{FILE_ENDING}")
    return case


def convert_dataset_folder(
    dataset_dir: str | os.PathLike,
    nnunet_raw: str | os.PathLike,
    dataset_id: int,
    name: str | None = None,
    nnunet_preprocessed: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """
    Write ``<nnunet_raw>/DatasetNNN_Name`` from a dataset folder of this project: ``imagesTr/<case>_XXXX.nii.gz``
    (one file per channel), ``labelsTr/<case>.nii.gz``, the same for the test list in ``imagesTs`` /
    ``labelsTs``, and nnU-Net's ``dataset.json`` (``channel_names``, ``labels`` with background 0 and the
    structure 1, ``numTraining``, ``file_ending``). The folds of ``dataset.json`` become nnU-Net's
    ``splits_final.json`` (fold ``k`` validates on the training cases of fold ``k``), written to
    ``<nnunet_preprocessed>/DatasetNNN_Name/`` where nnU-Net reads it, and kept beside the raw dataset.

    The raw folder is written all or nothing (a staging folder renamed at the end); every file is checked
    first (readable, image and label of one shape, binary label, the channel count of ``dataset.json``).

    Args:
        dataset_dir: the folder holding this project's ``dataset.json``.
        nnunet_raw: nnU-Net's ``nnUNet_raw`` folder.
        dataset_id: nnU-Net's dataset id, 1..999.
        name: the dataset name (default: ``dataset.json``'s ``name``).
        nnunet_preprocessed: nnU-Net's ``nnUNet_preprocessed`` folder (default: the ``nnUNet_preprocessed``
            environment variable; ``None`` there too: the splits stay beside the raw dataset only).
        overwrite: replace an existing ``DatasetNNN_Name`` raw folder.

    Returns:
        the raw dataset folder.

    Raises:
        FileNotFoundError: a missing ``dataset.json`` or file it names.
        ValueError: bad files (naming them), a bad id or name, training items without folds.
        FileExistsError: the raw folder exists and ``overwrite`` is false.
    """
    dataset_dir = Path(dataset_dir)
    info = json.loads((dataset_dir / DATALIST_NAME).read_text()) if (dataset_dir / DATALIST_NAME).is_file() else {}
    training = load_datalist(dataset_dir, "training")
    test = load_datalist(dataset_dir, "test") if info.get("test") else []
    channels = info.get("channels") or {"0": "image"}
    spatial_dims = 3 if info.get("tensorImageSize") == "3D" else 2
    check_dataset_items(training + test, in_channels=len(channels))
    if any("fold" not in item for item in training):
        raise ValueError(f"{dataset_dir / DATALIST_NAME}: every training item needs a 'fold' for nnU-Net's splits_final.json.")
    folds = sorted({item["fold"] for item in training})
    if folds != list(range(len(folds))):  # nnU-Net's fold k is the k-th entry of splits_final.json
        raise ValueError(f"{dataset_dir / DATALIST_NAME}: the folds must be 0..{len(folds) - 1} (nnU-Net indexes its splits), got {folds}.")
    folder_name = nnunet_dataset_name(dataset_id, name or info.get("name", dataset_dir.name))
    structure = {str(k): v for k, v in (info.get("labels") or {"1": "foreground"}).items()}.get("1", "foreground")
    with staging_folder(Path(nnunet_raw) / folder_name, overwrite=overwrite) as staging:
        parts = {}
        for part, items in (("Tr", training), ("Ts", test)):
            if not items:
                continue
            images, labels = staging / f"images{part}", staging / f"labels{part}"
            images.mkdir()
            labels.mkdir()
            parts[part] = [_write_case(item, images, labels, len(channels), spatial_dims) for item in items]
        nnunet_json = {
            "name": folder_name,
            "description": info.get("description", f"converted from {dataset_dir.name} by contextloss_monai.nnunet"),
            "channel_names": {str(k): v for k, v in channels.items()},
            "labels": {"background": 0, structure: 1},
            "numTraining": len(training),
            "file_ending": FILE_ENDING,
        }
        (staging / "dataset.json").write_text(json.dumps(nnunet_json, indent=2) + "\n")
        splits = [
            {"train": [c for c, item in zip(parts["Tr"], training) if item["fold"] != k],
             "val": [c for c, item in zip(parts["Tr"], training) if item["fold"] == k]}
            for k in folds
        ]
        (staging / "splits_final.json").write_text(json.dumps(splits, indent=2) + "\n")
    preprocessed = nnunet_preprocessed if nnunet_preprocessed is not None else os.environ.get("nnUNet_preprocessed")
    if preprocessed:
        write_text_atomic(Path(preprocessed) / folder_name / "splits_final.json", json.dumps(splits, indent=2) + "\n")
    return Path(nnunet_raw) / folder_name
