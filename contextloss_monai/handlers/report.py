"""The evaluation report a bundle writes: per-image metrics and their summary."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine
from monai.handlers import MetricsSaver
from monai.utils import ImageMetaKey as Key
from monai.utils import string_list_all_gather

from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import batch_filenames, to_numpy, write_csv_rows, write_text_atomic

__all__ = ["MetricsReport", "write_metrics_report"]

logger = logging.getLogger("contextloss_monai")


class MetricsReport(MetricsSaver):
    """Write the evaluation's per-image metrics to ``<output_dir>/metrics.csv`` (one row per image, one column
    per metric) and their mean, standard deviation and count (NaN-aware) to ``<output_dir>/summary.json``
    when the evaluator completes.

    MONAI's :class:`~monai.handlers.MetricsSaver` does the collecting: the image file names from the
    batches' metadata, gathered from every rank under ``torch.distributed``, and the per-image values that
    metric handlers keep with ``save_details=True`` (``engine.state.metric_details``, gathered by MONAI's
    cumulative metrics). What it cannot do is what this class adds: all metrics in one per-image table
    (averaged over class channels), a JSON summary with fixed ``extra`` fields, and atomic files.

    Args:
        output_dir: folder of the two files (created).
        image_key: the batch key whose ``filename_or_obj`` metadata names the images.
        extra: fixed fields added to the summary (e.g. the model path, the method name).
    """

    def __init__(self, output_dir: str | os.PathLike, image_key: str = "image", extra: dict | None = None) -> None:
        super().__init__(save_dir=str(output_dir), metrics=None, metric_details="*", batch_transform=self._image_meta)
        self.output_dir, self.image_key, self.extra = Path(output_dir), image_key, dict(extra or {})

    def _image_meta(self, batch) -> list[dict]:
        """The metadata of every image of a batch (collated dictionary or decollated list)."""
        return [{Key.FILENAME_OR_OBJ: n} if n else {} for n in batch_filenames(batch, self.image_key)]

    def __call__(self, engine: Engine) -> None:
        filenames = string_list_all_gather(self._filenames) if idist.get_world_size() > 1 else self._filenames
        if idist.get_rank() != self.save_rank:
            return
        names = [Path(n).name.split(".")[0] if n != "None" else f"case_{i}" for i, n in enumerate(filenames)]
        write_metrics_report(self.output_dir, names, getattr(engine.state, "metric_details", {}), self.extra)


def write_metrics_report(
    output_dir: str | os.PathLike, names: list[str], details: dict[str, Sequence[float] | np.ndarray | torch.Tensor], extra: dict | None = None
) -> dict:
    """The evaluation report: ``<output_dir>/metrics.csv`` (one row per image, one column per metric, each
    value averaged over the image's class channels) and ``<output_dir>/summary.json`` (NaN-aware mean, standard
    deviation and count per metric, after ``n_images`` and the ``extra`` fields), both written atomically.

    Args:
        output_dir: folder of the two files (created).
        names: the image names, one per row.
        details: metric name -> per-image values ``(len(names), ...)`` (class channels are averaged).
        extra: fixed fields of the summary (e.g. the model path, the method name).

    Returns:
        the summary.
    """
    output_dir = Path(output_dir)
    values = {k: to_numpy(torch.as_tensor(v).float().reshape(len(names), -1).mean(1)) for k, v in details.items()}
    write_csv_rows(output_dir / RunLayout.METRICS_CSV,
                   [{"image": name, **{k: f"{values[k][i]:.6g}" for k in values}} for i, name in enumerate(names)])
    summary = {
        k: {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else None, "std": float(np.nanstd(v)) if np.isfinite(v).any() else None,
            "count": int(np.isfinite(v).sum())}
        for k, v in values.items()
    }
    summary = {"n_images": len(names), **dict(extra or {}), "metrics": summary}
    write_text_atomic(output_dir / RunLayout.SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    logger.info("evaluation: " + ", ".join(f"{k} {v['mean']:.4g}" for k, v in summary["metrics"].items() if v["mean"] is not None))
    return summary
