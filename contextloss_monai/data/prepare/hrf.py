"""HRF — High-Resolution Fundus image database (Budai et al., 2013) → dataset folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from contextloss_monai.data.prepare.common import Case, check_root, find_files, write_prepared_dataset

__all__ = ["HRF_GROUPS", "find_hrf_cases", "prepare_hrf"]

#: healthy, glaucoma and diabetic retinopathy: 15 images each, named ``NN_<group>``
HRF_GROUPS = ("h", "g", "dr")
_NAME = re.compile(r"^(\d+)_(h|g|dr)$", re.IGNORECASE)


def find_hrf_cases(root: str | os.PathLike, n_test_per_group: int = 3) -> dict[str, list[Case]]:
    """Cases of the extracted ``all.zip``: ``images/NN_g.jpg``, ``manual1/NN_g.tif`` (vessel labels),
    ``mask/NN_g_mask.tif`` (field of view). The last ``n_test_per_group`` images (by number) of each
    group are the test split: 36 / 9 for the full archive (our reading of the paper's split)."""
    root = check_root(root)
    groups: dict[str, list[Case]] = {g: [] for g in HRF_GROUPS}
    for image in find_files(root, "images/*", "HRF fundus image"):
        match = _NAME.match(image.name.rsplit(".", 1)[0])
        if match is None:
            continue
        name = f"{int(match.group(1)):02d}_{match.group(2).lower()}"
        labels = find_files(root, f"manual1/{image.name.rsplit('.', 1)[0]}.tif*", f"vessel label for {image.name}")
        masks = find_files(root, f"mask/{image.name.rsplit('.', 1)[0]}_mask.tif*", f"field-of-view mask for {image.name}")
        groups[match.group(2).lower()].append(Case(name=name, images=[image], label=labels[0], mask=masks[0]))
    cases: dict[str, list[Case]] = {"train": [], "test": []}
    for group in HRF_GROUPS:
        ordered = sorted(groups[group], key=lambda c: c.name)
        cut = max(len(ordered) - n_test_per_group, 0)
        cases["train"] += ordered[:cut]
        cases["test"] += ordered[cut:]
    return cases


def prepare_hrf(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    n_test_per_group: int = 3,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert HRF: RGB images, binarised vessel labels and the field-of-view masks (kept as ``mask``),
    36 train / 9 test, 5 folds. The archive gives no pixel size: spacing 1."""
    cases = find_hrf_cases(root, n_test_per_group)
    return write_prepared_dataset(
        cases["train"], cases["test"], out_dir, (1.0, 1.0), name="hrf", description="HRF fundus images (Budai et al. 2013)",
        channels=("red", "green", "blue"), structure="vessel", n_folds=n_folds, seed=seed, overwrite=overwrite, progress=progress,
    )
