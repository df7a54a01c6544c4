"""Ignite handlers of a training stage: per-epoch log lines and CSV, per-epoch checkpoints, resuming."""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver

from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import is_main_process, to_numpy, write_csv_rows

__all__ = ["EpochLogger", "ResumeFromLastCheckpoint", "TrainingStateSaver"]

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
        self.path = Path(output_dir) / RunLayout.TRAINING_LOG
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
        self._losses.append(float(to_numpy(loss)) if torch.is_tensor(loss) else float(loss))
        self._train_end = time.perf_counter()

    def _epoch_completed(self, engine: Engine) -> None:
        if not is_main_process():
            return
        row = {"stage": self.stage, "epoch": engine.state.epoch, "loss": float(np.mean(self._losses)) if self._losses else float("nan")}
        if self.validator is not None and self.validator.state.epoch == engine.state.epoch:
            row.update({k: float(to_numpy(v)) for k, v in self.validator.state.metrics.items() if np.isscalar(v) or torch.is_tensor(v)})
        if self._lr is not None:
            row["lr"] = self._lr  # the rate the epoch trained with (schedulers step at its end)
        row["seconds"] = round(self._train_end - self._start, 2)  # training iterations only, not validation
        logger.info(
            "%s epoch %d/%d: " % (self.stage or "train", engine.state.epoch, engine.state.max_epochs)
            + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("stage", "epoch"))
        )
        rows = []
        if self.path.exists():  # rewrite with the union of columns: validation runs only every few epochs
            with self.path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        write_csv_rows(self.path, rows + [row])


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
        found = RunLayout.checkpoints_in(self.ckpt_dir, self.prefix)
        return found[-1][1] if found else None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        path = self.last_checkpoint()
        if path is None:
            logger.info("resume: no %s checkpoint in %s, starting at epoch 1", self.prefix, self.ckpt_dir)
            return
        logger.info("resume: loading %s", path)
        CheckpointLoader(load_path=str(path), load_dict={**self.load_dict, "trainer": engine}, map_location="cpu").attach(engine)
