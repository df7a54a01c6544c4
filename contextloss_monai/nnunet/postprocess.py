"""The paper's topological post-processing (Algorithm 2) for nnU-Net prediction folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from contextloss_monai.nnunet.folders import PredictionFolder, read_pair
from contextloss_monai.transforms import TopologicalPostProcess

__all__ = ["postprocess_prediction_folder"]


def postprocess_prediction_folder(
    finetuned_dir: str | os.PathLike,
    pretrained_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    n_classes: int = 2,
    connectivity: int | None = None,
) -> list[Path]:
    """
    Post-process every prediction of ``finetuned_dir`` with the same case's prediction in ``pretrained_dir``
    (:class:`~contextloss_monai.transforms.TopologicalPostProcess`, per class): keep the fine-tuned
    components that overlap a pretrained one, so the fine-tuning's new connections stay and its new
    isolated structures go. Writes ``output_dir/<case><file_ending>`` with the geometry of the input (nnU-Net's
    reader and writer), atomically per file, and copies the folder's ``dataset.json`` / ``plans.json``.

    Args:
        finetuned_dir: ``nnUNetv2_predict`` output of the fine-tuned model.
        pretrained_dir: ``nnUNetv2_predict`` output of the pretrained model, same cases.
        output_dir: where the post-processed label maps go.
        n_classes: label values ``0..n_classes-1`` (background included).
        connectivity: foreground connectivity, 8 (2D) / 26 (3D) by default.

    Returns:
        the written files.

    Raises:
        FileNotFoundError: a missing folder, or a fine-tuned case without a pretrained prediction.
        ValueError: an empty fine-tuned folder, shapes that differ, labels outside ``0..n_classes-1``.
    """
    finetuned, pretrained = PredictionFolder(finetuned_dir), PredictionFolder(pretrained_dir)
    output = PredictionFolder(output_dir, file_ending=finetuned.file_ending, create=True)
    cases = finetuned.cases()
    if not cases:
        raise ValueError(f"finetuned_dir {finetuned.folder} holds no {finetuned.file_ending} predictions.")
    transform = TopologicalPostProcess(connectivity=connectivity)
    written = []
    for case in cases:
        fine, pre, properties = read_pair(finetuned, pretrained, case, n_classes)
        kept = transform(fine[1:], pre[1:])  # foreground classes; removed pixels become background
        seg = np.zeros(fine.shape[1:], np.uint8)
        for c, mask in enumerate(kept, start=1):
            seg[mask > 0] = c
        written.append(output.write(case, seg, properties, writer=finetuned.io))
    for name in ("dataset.json", "plans.json"):
        if (finetuned.folder / name).is_file():
            shutil.copyfile(finetuned.folder / name, output.folder / name)
    return written
