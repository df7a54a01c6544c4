"""3D datasets given as folders of volumes: Vessap (two channels) and CLD (bone cement lines).

Neither archive has one fixed layout, so the files are found by glob patterns (documented defaults)
and paired in sorted order; the last ``n_test`` cases (sorted) form the test split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from contextloss_monai.data.prepare.common import Case, check_root, find_files, write_prepared_dataset

__all__ = ["VESSAP_DEFAULTS", "CLD_DEFAULTS", "find_volume_cases", "prepare_vessap", "prepare_cld"]

VESSAP_DEFAULTS = {"channel_globs": ("raw/*C00*", "raw/*C01*"), "label_glob": "seg/*", "n_test": 3}
#: CLD voxels are (45.6 nm)^3, in millimetres
CLD_DEFAULTS = {"image_glob": "images/*", "label_glob": "labels/*", "n_test": 4, "spacing": (45.6e-6,) * 3}


def find_volume_cases(root: str | os.PathLike, channel_globs: Sequence[str], label_glob: str, n_test: int) -> dict[str, list[Case]]:
    """Pair the files of each channel glob with the label files in sorted order and split off the last
    ``n_test`` cases.

    Raises:
        FileNotFoundError: when a pattern matches nothing.
        ValueError: when the patterns match different numbers of files or ``n_test`` leaves no training case.
    """
    root = check_root(root)
    channels = [find_files(root, pattern, f"channel {i} image") for i, pattern in enumerate(channel_globs)]
    labels = find_files(root, label_glob, "label")
    counts = [len(c) for c in channels] + [len(labels)]
    if len(set(counts)) > 1:
        raise ValueError(
            f"the patterns {list(channel_globs) + [label_glob]} under {root} match different numbers of files {counts}; "
            "every case needs one file per channel and one label."
        )
    if not 0 < n_test < len(labels):
        raise ValueError(f"n_test must be between 1 and {len(labels) - 1} for {len(labels)} cases, got {n_test}.")
    cases = [
        Case(name=label.name.split(".")[0], images=[c[i] for c in channels], label=label) for i, label in enumerate(labels)
    ]
    return {"train": cases[:-n_test], "test": cases[-n_test:]}


def _header_spacing(path: Path) -> tuple[float, ...] | None:
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    import nibabel as nib

    return tuple(float(z) for z in nib.load(str(path)).header.get_zooms()[:3])


def prepare_vessap(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    channel_globs: Sequence[str] = VESSAP_DEFAULTS["channel_globs"],
    label_glob: str = VESSAP_DEFAULTS["label_glob"],
    n_test: int = VESSAP_DEFAULTS["n_test"],
    spacing: Sequence[float] | None = None,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert Vessap volumes: two channels per case (stacked channel-last), binarised labels, 8 / 3
    split for the 11 annotated volumes, 5 folds. ``spacing`` (mm) defaults to the NIfTI header of the
    first channel file (1 mm for TIFF input)."""
    cases = find_volume_cases(root, channel_globs, label_glob, n_test)
    spacing = spacing or _header_spacing(cases["train"][0].images[0]) or (1.0, 1.0, 1.0)
    return write_prepared_dataset(
        cases["train"], cases["test"], out_dir, spacing, name="vessap", description="Vessap whole-brain vessel volumes (Todorov et al. 2020)",
        channels=[f"channel_{i}" for i in range(len(channel_globs))], structure="vessel", n_folds=n_folds, seed=seed,
        overwrite=overwrite, progress=progress,
    )


def prepare_cld(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    image_glob: str = CLD_DEFAULTS["image_glob"],
    label_glob: str = CLD_DEFAULTS["label_glob"],
    n_test: int = CLD_DEFAULTS["n_test"],
    spacing: Sequence[float] = CLD_DEFAULTS["spacing"],
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert the bone cement line dataset: single-channel volumes, binarised labels, 13 / 4 split for
    the 17 volumes, voxel size (45.6 nm)³ written to the header, 5 folds."""
    cases = find_volume_cases(root, [image_glob], label_glob, n_test)
    return write_prepared_dataset(
        cases["train"], cases["test"], out_dir, spacing, name="cld", description="Bone cement lines (CLD), synchrotron nano-CT",
        channels=("intensity",), structure="cement line", n_folds=n_folds, seed=seed, overwrite=overwrite, progress=progress,
    )
