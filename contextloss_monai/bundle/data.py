"""Dataset folders for bundles: create the synthetic default on first use, fail clearly otherwise."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from contextloss_monai.data.dataset_folder import DATALIST_NAME, check_dataset_items, load_datalist

__all__ = ["ensure_dataset", "dataset_items"]


def _distributed():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def ensure_dataset(
    dataset_dir: str | os.PathLike,
    synthetic_dir: str | os.PathLike | None = None,
    synthetic_kind: str | None = None,
    synthetic_size: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> str:
    """Return ``dataset_dir`` once it holds a datalist; generate the synthetic dataset when
    ``dataset_dir`` is the bundle's ``synthetic_dir`` and does not exist yet.

    Under ``torch.distributed`` only rank 0 generates, the others wait at a barrier.

    Args:
        dataset_dir: the bundle's ``dataset_dir`` setting.
        synthetic_dir: the bundle's default synthetic dataset folder.
        synthetic_kind: the generator (``roads``, ``retina``, ``vessels3d``, ``sheets3d``).
        synthetic_size, n_train, n_test, seed: passed to
            :func:`contextloss_monai.data.synthetic.write_synthetic_dataset` (``None``: the kind's default).

    Raises:
        FileNotFoundError: when ``dataset_dir`` (not the synthetic default) has no ``dataset.json``.
    """
    dataset_dir = Path(dataset_dir)
    if (dataset_dir / DATALIST_NAME).is_file():
        return str(dataset_dir)
    is_default = synthetic_dir is not None and dataset_dir.absolute() == Path(synthetic_dir).absolute()
    if not is_default or synthetic_kind is None:
        raise FileNotFoundError(
            f"dataset_dir {dataset_dir} has no {DATALIST_NAME}: point dataset_dir at a folder written by "
            "contextloss make-synthetic or contextloss prepare (see docs/data.md)."
        )
    from contextloss_monai.data.synthetic import write_synthetic_dataset

    dist = _distributed()
    if dist is None or dist.get_rank() == 0:
        write_synthetic_dataset(
            synthetic_kind, dataset_dir, n_train=n_train, n_test=n_test, size=synthetic_size, seed=seed, overwrite=True
        )
    if dist is not None:
        dist.barrier()
    return str(dataset_dir)


def dataset_items(
    dataset_dir: str | os.PathLike,
    role: str,
    fold: int | None = None,
    keys: Sequence[str] | None = None,
    in_channels: int | None = None,
    allow_outside: bool = False,
) -> list[dict]:
    """:func:`contextloss_monai.data.load_datalist` for a bundle setting: the ``role`` items of
    ``dataset_dir`` (``train`` / ``val`` of ``fold``, ``training`` or ``test``), every file checked to exist
    and to lie inside ``dataset_dir`` (unless ``allow_outside``).

    A negative ``fold`` means no fold: train on all training items, validate on the test list.
    ``keys`` keeps only those entries of each item (e.g. ``["image"]`` for inference without labels).
    With ``in_channels`` (the training and evaluation stages) every item is also read and checked before the
    stage runs (:func:`contextloss_monai.data.check_dataset_items`, on the kept ``keys``): an error names the file."""
    fold = None if fold is None or int(fold) < 0 else int(fold)
    if role in ("train",) and fold is None:
        role = "training"
    items = load_datalist(dataset_dir, role=role, fold=fold, allow_outside=allow_outside)
    if keys is not None:
        items = [{k: item[k] for k in keys if k in item} for item in items]
    if in_channels is not None:
        check_dataset_items(items, int(in_channels))
    return items
