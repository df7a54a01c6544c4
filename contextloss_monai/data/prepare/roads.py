"""Massachusetts Roads (Mnih, 2013) → dataset folder, with the paper's white-pixel rule."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from contextloss_monai.data.prepare.common import Case, check_root, find_files, pair_by_stem, read_array, write_prepared_dataset

__all__ = ["ROADS_LAYOUTS", "PAPER_COUNTS", "white_fraction", "find_roads_cases", "prepare_roads"]

#: where the satellite tiles and the road maps lie in the two public distributions of the archive:
#: Mnih's original ``mass_roads/{train,valid,test}/{sat,map}`` and the Kaggle mirror
#: (``balraj98/massachusetts-roads-dataset``) ``tiff/{train,val,test}{,_labels}``.
ROADS_LAYOUTS = {
    "mnih": {"train": ("train/sat", "train/map"), "valid": ("valid/sat", "valid/map"), "test": ("test/sat", "test/map")},
    "kaggle": {"train": ("tiff/train", "tiff/train_labels"), "valid": ("tiff/val", "tiff/val_labels"), "test": ("tiff/test", "tiff/test_labels")},
}
#: the paper's split after the white-pixel rule
PAPER_COUNTS = {"train": 421, "test": 49}
ROADS_SPACING_MM = (1000.0, 1000.0)  # 1 m per pixel


def white_fraction(image: np.ndarray) -> float:
    """Share of pixels whose colour channels are all 255 (the archive's no-data areas), in ``[0, 1]``."""
    image = np.asarray(image)
    white = (image[..., :3] == 255).all(-1) if image.ndim == 3 else image == 255
    return float(white.mean())


def _layout_root(root: Path) -> tuple[Path, str]:
    for base in (root, root / "mass_roads"):
        for layout, parts in ROADS_LAYOUTS.items():
            if (base / parts["train"][0]).is_dir() and (base / parts["test"][0]).is_dir():
                return base, layout
    expected = "; ".join(f"{name}: {parts['train'][0]}/ and {parts['test'][0]}/" for name, parts in ROADS_LAYOUTS.items())
    raise FileNotFoundError(f"root {root} does not hold the Massachusetts Roads archive layout ({expected}).")


def find_roads_cases(root: str | os.PathLike) -> dict[str, list[Case]]:
    """The ``train`` (train + valid of the archive) and ``test`` cases of an extracted archive."""
    base, layout = _layout_root(check_root(root))
    cases: dict[str, list[Case]] = {"train": [], "test": []}
    for part, (sat, road_map) in ROADS_LAYOUTS[layout].items():
        if not (base / sat).is_dir():
            continue  # the validation split is optional
        images = find_files(base, f"{sat}/*.tif*", f"{part} satellite image")
        labels = find_files(base, f"{road_map}/*.tif*", f"{part} road map")
        for image, label in pair_by_stem(images, labels):
            cases["test" if part == "test" else "train"].append(Case(name=image.name.split(".")[0], images=[image], label=label))
    return cases


def prepare_roads(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    max_white: float = 0.04,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert the Massachusetts Roads archive: drop every image (train and test) whose share of white
    no-data pixels exceeds ``max_white`` (the paper: 4 %, leaving 421 train / 49 test), binarise the
    road maps (0 / 255 → 0 / 1), write NIfTI with 1 m pixels and 5 folds.

    Raises:
        FileNotFoundError: when the archive layout or files are missing.
        ValueError: when a file is unreadable, shapes disagree, a map is not binary or no image is left.
    """
    from tqdm.auto import tqdm

    cases = find_roads_cases(root)
    kept: dict[str, list[Case]] = {}
    for part, part_cases in cases.items():
        kept[part] = []
        for case in tqdm(part_cases, desc=f"white-pixel rule ({part})", unit="image", disable=not progress):
            fraction = white_fraction(read_array(case.images[0]))
            if fraction <= max_white:
                case.extra["white_fraction"] = round(fraction, 6)
                kept[part].append(case)
        if not kept[part]:
            raise ValueError(f"no {part} image of {root} passes the white-pixel rule (max_white={max_white}).")
    counts = {part: len(v) for part, v in kept.items()}
    if counts != PAPER_COUNTS and progress:
        print(f"prepare_roads: kept {counts['train']} train / {counts['test']} test images (the paper: 421 / 49).")
    return write_prepared_dataset(
        kept["train"], kept["test"], out_dir, ROADS_SPACING_MM, name="massachusetts_roads",
        description=f"Massachusetts Roads (Mnih 2013), images with > {100 * max_white:g} % white pixels dropped",
        channels=("red", "green", "blue"), structure="road", n_folds=n_folds, seed=seed, overwrite=overwrite, progress=progress,
    )
