"""The topology evaluation of an nnU-Net prediction folder, written like a bundle's evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.metrics import compute_dice

from contextloss_monai.handlers.report import write_metrics_report
from contextloss_monai.metrics import betti_error_kinds, compute_ags, compute_betti_error, compute_cldice, compute_e0_gt
from contextloss_monai.nnunet.folders import PredictionFolder, read_pair

__all__ = ["evaluate_prediction_folder"]


def evaluate_prediction_folder(
    prediction_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    n_classes: int = 2,
    betti_patch_size: Sequence[int] | int | None = None,
    e0gt_patch_size: Sequence[int] | int | None = None,
    skeleton_patch_size: Sequence[int] | int | None = None,
    betti_slice_axis: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    extra: dict | None = None,
) -> dict:
    """
    Evaluate every label map of ``label_dir`` (nnU-Net's ``labelsTr`` / ``labelsTs``) against the same case in
    ``prediction_dir`` with the bundles' metrics and protocol settings — Dice, clDice, AGS, e0-Gt and the Betti
    errors e, e0, e1, foreground classes only — and write ``output_dir/metrics.csv`` and
    ``output_dir/summary.json`` exactly as a bundle's ``evaluate.yaml`` does
    (:func:`~contextloss_monai.handlers.report.write_metrics_report`).

    Args:
        prediction_dir: ``nnUNetv2_predict`` output (or a post-processed folder).
        label_dir: the reference label maps.
        output_dir: the report's folder.
        n_classes: label values ``0..n_classes-1``.
        betti_patch_size, e0gt_patch_size, skeleton_patch_size: tiles of the Betti errors, of e0-Gt and of
            clDice / AGS (``None``: the whole image), as the bundles' settings of the same names.
        betti_slice_axis: Betti errors per slice along this spatial axis of a 3D image (CLD's protocol).
        cache_dir: label-skeleton cache shared across evaluations (see :func:`compute_cldice`).
        num_workers: worker processes for the skeletons.
        extra: fixed fields of the summary.

    Returns:
        the summary.

    Raises:
        FileNotFoundError: a missing folder or a label without its prediction.
        ValueError: an empty label folder, shapes that differ, labels outside ``0..n_classes-1``.
    """
    predictions, labels = PredictionFolder(prediction_dir), PredictionFolder(label_dir)
    cases = labels.cases()
    if not cases:
        raise ValueError(f"label_dir {labels.folder} holds no {labels.file_ending} label maps.")
    skeletons = {"patch_size": skeleton_patch_size, "num_workers": num_workers, "cache_dir": cache_dir}
    details: dict[str, list[np.ndarray]] = {}
    for case in cases:
        y, p, _ = read_pair(labels, predictions, case, n_classes)
        y_pred, y_true = torch.from_numpy(p)[None], torch.from_numpy(y)[None]
        betti = compute_betti_error(y_pred, y_true, include_background=False, patch_size=betti_patch_size, slice_axis=betti_slice_axis)
        kinds = betti_error_kinds(betti.shape[-1] == 4)
        values = {
            "dice": compute_dice(y_pred, y_true, include_background=False),
            "cldice": compute_cldice(y_pred, y_true, include_background=False, **skeletons),
            "ags": compute_ags(y_pred, y_true, include_background=False, **skeletons),
            "e0_gt": compute_e0_gt(y_pred, y_true, include_background=False, patch_size=e0gt_patch_size),
            **{f"betti_{kind}": betti[..., kinds.index(kind)] for kind in ("e", "e0", "e1")},
        }
        for name, value in values.items():
            details.setdefault(name, []).append(value.reshape(-1).numpy())
    extra = {"predictions": str(Path(prediction_dir)), **dict(extra or {})}
    return write_metrics_report(output_dir, cases, {k: np.stack(v) for k, v in details.items()}, extra)
