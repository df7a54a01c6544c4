"""Seeded synthetic datasets of the paper's four kinds, hard in the same way as the real ones.

=============  ==========================  ===================================  =======================
kind           counterpart                 sample                               hard places (``n_hard``)
=============  ==========================  ===================================  =======================
``roads``      Massachusetts Roads         2D RGB ``(S, S, 3)``                 tree canopies, shadows
``retina``     HRF                         2D RGB ``(S, S, 3)`` + FOV mask      faint vessel stretches
``vessels3d``  Vessap                      3D 2-channel ``(S, S, S/2, 2)``      signal dropouts
``sheets3d``   CLD (bone cement lines)     3D ``(S, S, 0.6 S, 1)``              faint layer patches
=============  ==========================  ===================================  =======================

:func:`write_synthetic_dataset` writes a dataset folder in the layout of
:mod:`contextloss_monai.data.dataset_folder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from contextloss_monai.checks import check_option, check_positive_int
from contextloss_monai.data.dataset_folder import CaseArrays, write_dataset_folder
from contextloss_monai.data.synthetic.common import SyntheticSample
from contextloss_monai.data.synthetic.retina import make_retina
from contextloss_monai.data.synthetic.roads import make_roads
from contextloss_monai.data.synthetic.sheets3d import make_sheets3d
from contextloss_monai.data.synthetic.vessels3d import make_vessels3d

__all__ = [
    "DEFAULTS",
    "GENERATORS",
    "SyntheticSample",
    "make_retina",
    "make_roads",
    "make_sample",
    "make_sheets3d",
    "make_vessels3d",
    "write_synthetic_dataset",
]

GENERATORS: dict[str, Callable[..., SyntheticSample]] = {
    "roads": make_roads,
    "retina": make_retina,
    "vessels3d": make_vessels3d,
    "sheets3d": make_sheets3d,
}

#: small defaults per kind: a dataset in seconds, a bundle trained in minutes on a CPU
DEFAULTS: dict[str, dict[str, int]] = {
    "roads": {"size": 256, "n_train": 24, "n_test": 6},
    "retina": {"size": 256, "n_train": 24, "n_test": 6},
    "vessels3d": {"size": 64, "n_train": 16, "n_test": 4},
    "sheets3d": {"size": 64, "n_train": 16, "n_test": 4},
}

_DESCRIPTIONS = {
    "roads": ("Synthetic aerial road scenes (Massachusetts Roads-like)", ["red", "green", "blue"], "road"),
    "retina": ("Synthetic fundus images (HRF-like)", ["red", "green", "blue"], "vessel"),
    "vessels3d": ("Synthetic two-channel brain vessel volumes (Vessap-like)", ["lumen", "wall"], "vessel"),
    "sheets3d": ("Synthetic bone cement line volumes (CLD-like)", ["intensity"], "cement line"),
}


def make_sample(kind: str, size: int | None = None, seed: int = 0) -> SyntheticSample:
    """One sample of ``kind`` (``"roads"``, ``"retina"``, ``"vessels3d"``, ``"sheets3d"``) at ``size``
    (default: the kind's :data:`DEFAULTS`)."""
    kind = check_option(kind, sorted(GENERATORS), "kind")
    return GENERATORS[kind](size=DEFAULTS[kind]["size"] if size is None else size, seed=seed)


def write_synthetic_dataset(
    kind: str,
    out_dir: str | os.PathLike,
    n_train: int | None = None,
    n_test: int | None = None,
    size: int | None = None,
    seed: int = 0,
    n_folds: int = 5,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a synthetic dataset folder: NIfTI images / labels (/ FOV masks) and ``dataset.json``.

    Sample ``i`` is generated from the seed ``(seed, i)``, so a dataset is reproducible and growing
    ``n_train`` keeps the first samples. Per-sample generator metadata (``n_hard``, ...) is written to
    ``synthetic_metadata.json``. The folder is written beside ``out_dir`` and moved into place at the end.

    Args:
        kind: ``"roads"``, ``"retina"``, ``"vessels3d"`` or ``"sheets3d"``.
        out_dir: the dataset folder to create.
        n_train: number of training cases (default per kind, see :data:`DEFAULTS`); needs ``>= n_folds``.
        n_test: number of test cases (default per kind).
        size: image edge length (default per kind).
        seed: dataset seed.
        n_folds: number of cross-validation folds written as ``fold`` keys of the training items.
        overwrite: replace a non-empty ``out_dir``.
        progress: show a progress bar.

    Returns:
        the path of ``dataset.json``.

    Raises:
        ValueError: for an unknown ``kind`` or non-positive counts, or fewer training cases than folds.
        FileExistsError: when ``out_dir`` is not empty and ``overwrite`` is false.
    """
    kind = check_option(kind, sorted(GENERATORS), "kind")
    defaults = DEFAULTS[kind]
    n_train = check_positive_int(defaults["n_train"] if n_train is None else n_train, "n_train")
    n_test = check_positive_int(defaults["n_test"] if n_test is None else n_test, "n_test")
    size = check_positive_int(defaults["size"] if size is None else size, "size")
    n_folds = check_positive_int(n_folds, "n_folds")
    if n_train < n_folds:
        raise ValueError(f"n_train must be at least n_folds={n_folds} so that every fold has a case, got {n_train}.")
    description, channels, structure = _DESCRIPTIONS[kind]

    def load(index: int) -> Callable[[], CaseArrays]:
        def generate() -> CaseArrays:
            sample_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
            sample = GENERATORS[kind](size=size, seed=sample_seed)
            image = sample.image if sample.image.shape[-1] > 1 or sample.image.ndim == 3 else sample.image[..., 0]
            return CaseArrays(image, sample.label, sample.spacing, sample.mask, metadata=sample.metadata)

        return generate

    cases = [(f"{kind}_{i:03d}", load(i)) for i in range(n_train + n_test)]
    return write_dataset_folder(
        out_dir, cases[:n_train], cases[n_train:], n_folds=n_folds, seed=seed, channels=channels, structure=structure,
        overwrite=overwrite, progress=progress, desc=f"synthetic {kind}", metadata_file="synthetic_metadata.json",
        name=f"synthetic_{kind}", description=f"{description}; contextloss_monai.data.synthetic, seed {seed}, size {size}",
    )
