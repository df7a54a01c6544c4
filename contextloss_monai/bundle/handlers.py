"""Ignite handlers the bundles attach: per-epoch log lines and CSV, resuming, the evaluation report."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver

from contextloss_monai.bundle.distributed import is_main_process

__all__ = ["EpochLogger", "MetricsReport", "ResumeFromLastCheckpoint", "TrainingStateSaver"]

logger = logging.getLogger("contextloss_monai")


class EpochLogger:
    """Log one line per training epoch (mean loss, validation metrics, learning rate, seconds of training
    iterations without validation) and append it to ``<output_dir>/training_log.csv`` — the source of the
    training-curve figures and of the runtime table.

    Attach it after the ``ValidationHandler`` so that the epoch's validation metrics are included.

    Args:
        output_dir: folder of ``training_log.csv`` (created).
        validator: the evaluator whose ``state.metrics`` are logged (optional).
        optimizer: the optimizer whose first learning rate is logged (optional).
        stage: a name written in every row (``pretrain``, ``finetune_context``...).
    """

    def __init__(self, output_dir: str | os.PathLike, validator: Engine | None = None, optimizer=None, stage: str = "") -> None:
        self.path = Path(output_dir) / "training_log.csv"
        self.validator, self.optimizer, self.stage = validator, optimizer, stage
        self._losses: list[float] = []
        self._start = 0.0
        self._lr: float | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine: Engine) -> None:
        self._losses, self._start = [], time.perf_counter()
        self._train_end = self._start
        self._lr = float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else None

    def _iteration_completed(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output[0]["loss"] if isinstance(output, list) else output["loss"]
        self._losses.append(float(loss.item() if torch.is_tensor(loss) else loss))
        self._train_end = time.perf_counter()

    def _epoch_completed(self, engine: Engine) -> None:
        if not is_main_process():
            return
        row = {"stage": self.stage, "epoch": engine.state.epoch, "loss": float(np.mean(self._losses)) if self._losses else float("nan")}
        if self.validator is not None and self.validator.state.epoch == engine.state.epoch:
            row.update({k: float(v) for k, v in self.validator.state.metrics.items() if np.isscalar(v) or torch.is_tensor(v)})
        if self._lr is not None:
            row["lr"] = self._lr  # the rate the epoch trained with (schedulers step at its end)
        row["seconds"] = round(self._train_end - self._start, 2)  # training iterations only, not validation
        logger.info(
            "%s epoch %d/%d: " % (self.stage or "train", engine.state.epoch, engine.state.max_epochs)
            + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("stage", "epoch"))
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if self.path.exists():  # rewrite with the union of columns: validation runs only every few epochs
            with self.path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        rows.append(row)
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


class TrainingStateSaver:
    """Save ``save_dict`` plus the trainer's own state every epoch as ``<prefix>_checkpoint_epoch=N.pt``
    in ``save_dir``, keeping the newest only: what :class:`ResumeFromLastCheckpoint` resumes from.

    MONAI's ``CheckpointSaver`` does the saving; the trainer is added when the handler is attached, so a
    bundle config needs no reference from the trainer's handlers back to the trainer.
    """

    def __init__(self, save_dir: str | os.PathLike, save_dict: dict, prefix: str) -> None:
        self.save_dir, self.save_dict, self.prefix = str(save_dir), dict(save_dict), prefix

    def attach(self, engine: Engine) -> None:
        CheckpointSaver(
            save_dir=self.save_dir,
            save_dict={**self.save_dict, "trainer": engine},
            file_prefix=self.prefix,
            save_interval=1,
            n_saved=1,
            epoch_level=True,
        ).attach(engine)


class ResumeFromLastCheckpoint:
    """Resume a training stage from its newest ``<prefix>_checkpoint_epoch=N.pt`` in ``ckpt_dir``.

    With ``enabled`` and a checkpoint present this attaches MONAI's ``CheckpointLoader`` for
    ``load_dict`` plus the trainer's state: the trainer continues at epoch ``N + 1``. Otherwise it does
    nothing, so bundles list it unconditionally and switch it with the ``resume`` setting.
    """

    def __init__(self, ckpt_dir: str | os.PathLike, prefix: str, load_dict: dict, enabled: bool = False) -> None:
        self.ckpt_dir, self.prefix, self.load_dict, self.enabled = Path(ckpt_dir), prefix, load_dict, bool(enabled)

    def last_checkpoint(self) -> Path | None:
        pattern = re.compile(rf"^{re.escape(self.prefix)}_checkpoint_epoch=(\d+)\.pt$")
        found = [(int(m.group(1)), p) for p in self.ckpt_dir.glob(f"{self.prefix}_checkpoint_epoch=*.pt") if (m := pattern.match(p.name))]
        return max(found)[1] if found else None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        path = self.last_checkpoint()
        if path is None:
            logger.info("resume: no %s checkpoint in %s, starting at epoch 1", self.prefix, self.ckpt_dir)
            return
        logger.info("resume: loading %s", path)
        CheckpointLoader(load_path=str(path), load_dict={**self.load_dict, "trainer": engine}, map_location="cpu").attach(engine)


class MetricsReport:
    """Write the evaluation's per-image metrics to ``<output_dir>/metrics.csv`` and their mean, standard
    deviation and count (NaN-aware) to ``<output_dir>/summary.json`` when the evaluator completes.

    It reads the per-image values that MONAI metric handlers keep with ``save_details=True``
    (``engine.state.metric_details``) and the image file names from the batches' metadata.

    Args:
        output_dir: folder of the two files (created).
        image_key: the batch key whose ``filename_or_obj`` metadata names the images.
        extra: fixed fields added to the summary (e.g. the model path, the method name).
    """

    def __init__(self, output_dir: str | os.PathLike, image_key: str = "image", extra: dict | None = None) -> None:
        self.output_dir, self.image_key, self.extra = Path(output_dir), image_key, dict(extra or {})
        self._names: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self._names.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_names)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _collect_names(self, engine: Engine) -> None:
        batch = engine.state.batch
        items = batch if isinstance(batch, list) else [batch]
        for item in items:
            image = item[self.image_key]
            meta = getattr(image, "meta", {})
            names = meta.get("filename_or_obj", [])
            names = [names] if isinstance(names, str) else list(names)
            self._names += [Path(n).name.split(".")[0] for n in names] or [f"case_{len(self._names)}"]

    def _write(self, engine: Engine) -> None:
        if not is_main_process():
            return
        details = {k: torch.as_tensor(v).float().reshape(len(self._names), -1).mean(1).numpy()
                   for k, v in getattr(engine.state, "metric_details", {}).items()}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / "metrics.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image"] + list(details))
            for i, name in enumerate(self._names):
                writer.writerow([name] + [f"{details[k][i]:.6g}" for k in details])
        summary = {
            k: {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else None, "std": float(np.nanstd(v)) if np.isfinite(v).any() else None,
                "count": int(np.isfinite(v).sum())}
            for k, v in details.items()
        }
        summary = {"n_images": len(self._names), **self.extra, "metrics": summary}
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        logger.info("evaluation: " + ", ".join(f"{k} {v['mean']:.4g}" for k, v in summary["metrics"].items() if v["mean"] is not None))
