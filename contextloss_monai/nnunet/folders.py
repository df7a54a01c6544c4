"""Reading and writing the label maps of nnU-Net folders (raw labels, predictions) with nnU-Net's own readers."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from contextloss_monai.utils import atomic_path

__all__ = ["PredictionFolder", "read_pair"]


class PredictionFolder:
    """The label maps of an nnU-Net folder (``labelsTr``/``labelsTs`` or a prediction folder), read and written
    with the reader nnU-Net picks for its ``file_ending`` (``dataset.json`` in the folder or beside it, else
    ``.nii.gz``), so that geometry round-trips exactly as nnU-Net writes it.

    Args:
        folder: the folder of ``<case><file_ending>`` files.
        file_ending: override of the file ending.
        create: create the folder (an output folder) instead of requiring it.

    Raises:
        FileNotFoundError: when ``folder`` is not a folder and ``create`` is false.
    """

    def __init__(self, folder: str | os.PathLike, file_ending: str | None = None, create: bool = False) -> None:
        self.folder = Path(folder)
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"prediction/label folder {self.folder} does not exist.")
        if file_ending is None:
            for candidate in (self.folder / "dataset.json", self.folder.parent / "dataset.json"):
                if candidate.is_file():
                    file_ending = json.loads(candidate.read_text()).get("file_ending")
                    if file_ending:
                        break
        self.file_ending = file_ending or ".nii.gz"

    def cases(self) -> list[str]:
        """Case names of the folder's label maps, sorted."""
        return sorted(p.name[: -len(self.file_ending)] for p in self.folder.iterdir() if p.name.endswith(self.file_ending) and not p.name.startswith("."))

    def path(self, case: str) -> Path:
        return self.folder / f"{case}{self.file_ending}"

    @functools.cached_property
    def io(self):
        """nnU-Net's reader/writer for this folder's files, chosen once from its first file (nnU-Net's choice
        probes the file with each candidate reader: once per folder, not once per read).

        Raises:
            ValueError: when the folder holds no ``file_ending`` files.
        """
        from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_file_ending

        cases = self.cases()
        if not cases:
            raise ValueError(f"{self.folder} holds no {self.file_ending} label maps.")
        return determine_reader_writer_from_file_ending(self.file_ending, str(self.path(cases[0])), verbose=False)()

    def read(self, case: str) -> tuple[np.ndarray, dict]:
        """The label map of ``case`` as an integer array ``(H, W)`` or ``(D, H, W)`` (nnU-Net's axis order) and
        the reader's properties (for :meth:`write`).

        Raises:
            FileNotFoundError: naming the missing file.
        """
        path = self.path(case)
        if not path.is_file():
            raise FileNotFoundError(f"{self.folder} has no label map for case {case!r} (expected {path.name}).")
        seg, properties = self.io.read_seg(str(path))
        seg = seg[0]
        return (seg[0] if seg.shape[0] == 1 else seg).astype(np.int64), properties  # 2D images come as (1, 1, H, W)

    def write(self, case: str, seg: np.ndarray, properties: dict, writer) -> Path:
        """Write ``seg`` (as :meth:`read` returns it) for ``case`` atomically (a hidden temporary file, then a
        rename: :func:`~contextloss_monai.utils.atomic_path`) with ``writer``, the :attr:`io` of the folder whose
        ``properties`` (geometry) it carries."""
        path = self.path(case)
        with atomic_path(path, suffix=self.file_ending) as partial:
            writer.write_seg(seg[None] if seg.ndim == 2 else seg, str(partial), properties)
        return path


def _one_hot(folder: PredictionFolder, case: str, n_classes: int) -> tuple[np.ndarray, dict]:
    """The label map of ``case`` one-hot ``(n_classes, *spatial)`` (float32) and its properties."""
    seg, properties = folder.read(case)
    if seg.min() < 0 or seg.max() >= n_classes:
        raise ValueError(f"{folder.path(case)} holds labels outside 0..{n_classes - 1} (found {seg.min()}..{seg.max()}).")
    return np.stack([seg == c for c in range(n_classes)]).astype(np.float32), properties


def read_pair(first: PredictionFolder, second: PredictionFolder, case: str, n_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The label maps of ``case`` in both folders, one-hot ``(n_classes, *spatial)`` (float32), and the first's
    properties (its geometry, for :meth:`PredictionFolder.write`).

    Raises:
        FileNotFoundError: naming a missing file.
        ValueError: a label outside ``0..n_classes-1``, or maps of different shapes (naming both folders).
    """
    a, properties = _one_hot(first, case, n_classes)
    b, _ = _one_hot(second, case, n_classes)
    if a.shape != b.shape:
        raise ValueError(f"case {case!r}: {first.folder} has shape {a.shape[1:]}, {second.folder} has {b.shape[1:]}.")
    return a, b, properties
