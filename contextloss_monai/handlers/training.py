"""Ignite handlers of a training stage: per-epoch log lines and CSV, per-epoch checkpoints, resuming."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from monai.handlers import CheckpointLoader, stopping_fn_from_metric
from torch.nn import DataParallel
from torch.nn.parallel import DistributedDataParallel

from contextloss_monai.checks import check_positive_int
from contextloss_monai.layout import RunLayout
from contextloss_monai.utils import batch_filenames, is_main_process, read_csv_rows, remove_partial_files, save_atomic, to_numpy, write_csv_rows

__all__ = ["EarlyStopOnPlateau", "EpochLogger", "FinalModelSaver", "ResumeFromLastCheckpoint", "StopOnNonFiniteLoss", "TrainingStateSaver"]

logger = logging.getLogger("contextloss_monai")


class EpochLogger:
    """Log one line per training epoch (mean loss, validation metrics, learning rate, seconds of training
    iterations without validation) and append it to ``<output_dir>/training_log.csv`` — the source of the
    training-curve figures and of the runtime table. A run that starts again at epoch ``e`` (afresh, or
    resumed from a checkpoint older than the log's last row) replaces the log's rows from epoch ``e`` on.

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
        row = {"stage": self.stage, "epoch": engine.state.epoch, "steps": engine.state.iteration, "loss": float(np.mean(self._losses)) if self._losses else float("nan")}
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
            # rows of an earlier run from this epoch on belong to a run that was restarted or resumed
            # from an older checkpoint: replaced, so that the log describes the epochs the model has
            rows = [r for r in read_csv_rows(self.path, ("epoch",)) if int(r["epoch"]) < engine.state.epoch]
        write_csv_rows(self.path, rows + [row])


class EarlyStopOnPlateau:
    """End training when a validation metric stops improving: Ignite's ``EarlyStopping`` (what MONAI's
    ``EarlyStopHandler`` wraps) on the validator, attached from the trainer's handler list, so a bundle config
    needs no reference from the validator back to the trainer. ``patience=None`` attaches nothing: the stage
    runs all its epochs.

    Args:
        validator: the evaluator run by the ``ValidationHandler``.
        metric_name: the validator's metric to watch (higher is better), e.g. ``"val_mean_dice"``.
        patience: validations without improvement before the trainer stops; ``None``: never stop early.
        min_delta: the least change that counts as an improvement.
    """

    def __init__(self, validator: Engine, metric_name: str, patience: int | None, min_delta: float = 0.0) -> None:
        self.validator, self.metric_name, self.min_delta = validator, metric_name, float(min_delta)
        self.patience = None if patience is None else check_positive_int(patience, "pretrain_patience")

    def attach(self, engine: Engine) -> None:
        if self.patience is None:
            return
        # the smallest improvement is the fourth argument in every Ignite we support: ``min_delta`` before 0.5.5,
        # ``threshold`` since (``min_delta=`` by name now warns that it is deprecated)
        stopper = EarlyStopping(self.patience, stopping_fn_from_metric(self.metric_name), engine, self.min_delta)
        self.validator.add_event_handler(Events.EPOCH_COMPLETED, stopper)


def _unwrapped_state(objects: dict) -> dict:
    """``state_dict()`` of every object, ``DistributedDataParallel`` / ``DataParallel`` unwrapped."""
    return {k: (v.module if isinstance(v, (DistributedDataParallel, DataParallel)) else v).state_dict() for k, v in objects.items()}


def _batch_files(engine: Engine) -> list[str]:
    """The image and label files of the engine's current batch (from their ``filename_or_obj`` metadata)."""
    return sorted({n for key in ("image", "label") for n in batch_filenames(engine.state.batch, key) if n})


class StopOnNonFiniteLoss:
    """Stop a training stage at the first non-finite loss with an error that names the stage, epoch,
    iteration and the batch's files. It raises (unlike Ignite's ``TerminateOnNan``, which ends the run as
    completed), so no final model is written and the last checkpoint stays the last good epoch.

    Args:
        stage: the stage name in the message.
    """

    def __init__(self, stage: str = "") -> None:
        self.stage = stage

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output[0]["loss"] if isinstance(output, list) else output["loss"]
        value = float(to_numpy(loss)) if torch.is_tensor(loss) else float(loss)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"{self.stage or 'training'}: the loss is {value} at epoch {engine.state.epoch}, iteration "
                f"{engine.state.iteration} (batch files: {', '.join(_batch_files(engine)) or 'unknown'}); training "
                "stopped, nothing was saved. Check those files (NaN or inf in an image, a label outside {0, 1}) "
                "or lower the learning rate."
            )


class TrainingStateSaver:
    """Save ``save_dict`` plus the trainer's own state after every epoch as ``<prefix>_checkpoint_epoch=N.pt``
    in ``save_dir``, keeping the newest only: what :class:`ResumeFromLastCheckpoint` resumes from.

    Each checkpoint is written to a temporary file and renamed into place, and the previous one is removed
    only after that: a run killed at any moment, during a save too, leaves the last complete checkpoint.
    Only rank 0 writes under ``torch.distributed``. The trainer is added when the handler is attached, so a
    bundle config needs no reference from the trainer's handlers back to the trainer.
    """

    def __init__(self, save_dir: str | os.PathLike, save_dict: dict, prefix: str) -> None:
        self.save_dir, self.save_dict, self.prefix = Path(save_dir), dict(save_dict), prefix

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._remove_partial_saves)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _remove_partial_saves(self, engine: Engine) -> None:
        """Remove what a save killed half-way left behind (temporary files, never loaded)."""
        if is_main_process():
            remove_partial_files(self.save_dir, f"{self.prefix}_checkpoint_epoch=*")

    def __call__(self, engine: Engine) -> None:
        if not is_main_process():
            return
        state = {**_unwrapped_state(self.save_dict), "trainer": engine.state_dict()}
        path = self.save_dir / f"{self.prefix}_checkpoint_epoch={engine.state.epoch}.pt"
        save_atomic(state, path)
        for _, older in RunLayout.checkpoints_in(self.save_dir, self.prefix):
            if older != path:
                older.unlink(missing_ok=True)


class FinalModelSaver:
    """Write the network's weights (its ``state_dict``) to ``save_dir/final_filename`` when the stage
    completes — and only then: a stage that raises (bad data, a non-finite loss, a kill) leaves the file that
    was there before. Written atomically (temporary file, then rename), by rank 0 only, after checking that
    every weight is finite, as host tensors (a model trained on a GPU loads anywhere).

    Replaces MONAI's ``CheckpointSaver(save_final=True)``, which also writes when the run raises. When the
    stage starts, the temporary file of a save that was killed half-way is removed.

    Args:
        save_dir: the models folder.
        network: the trained network (``DistributedDataParallel`` is unwrapped).
        final_filename: ``pretrained.pt``, ``model.pt``, ...

    Raises:
        FloatingPointError: at completion, when a weight is NaN or infinite (nothing is written).
    """

    def __init__(self, save_dir: str | os.PathLike, network: torch.nn.Module, final_filename: str) -> None:
        self.path, self.network = Path(save_dir) / final_filename, network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._remove_partial_saves)
        engine.add_event_handler(Events.COMPLETED, self)

    def _remove_partial_saves(self, engine: Engine) -> None:
        """Remove the temporary file a save killed half-way left behind (``.<final_filename>.*.partial``)."""
        if is_main_process():
            remove_partial_files(self.path.parent, self.path.name)

    def __call__(self, engine: Engine) -> None:
        if not is_main_process():
            return
        state = _unwrapped_state({"model": self.network})["model"]
        bad = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
        if bad:
            raise FloatingPointError(f"not writing {self.path}: {len(bad)} weights are NaN or infinite (e.g. {bad[0]}).")
        # host tensors: the weights load on a machine without the GPU they were trained on (CPU, MONAI Label)
        save_atomic({k: v.detach().cpu() for k, v in state.items()}, self.path)
        logger.info("saved %s", self.path)


class ResumeFromLastCheckpoint:
    """Resume a training stage from its newest complete ``<prefix>_checkpoint_epoch=N.pt`` in ``ckpt_dir``.

    With ``enabled`` and a checkpoint present this attaches MONAI's ``CheckpointLoader`` for ``load_dict``
    plus the trainer's state: the trainer continues at epoch ``N + 1``. A checkpoint that cannot be read (an
    interrupted save of an older version) is skipped with a warning for the previous one. Without a
    checkpoint, or without ``enabled``, it does nothing, so bundles list it unconditionally and switch it
    with the ``resume`` setting.

    A run resumed with another number of epochs than the checkpoint's continues the learning-rate schedule
    over the new length: the ``lr_scheduler`` of ``load_dict`` (one with ``total_iters``, as the bundles'
    ``PolynomialLR``) gets ``total_iters = max_epochs`` and the learning rate of the epoch it resumes at.

    Raises:
        ValueError: when the epochs changed and the scheduler cannot be stretched, or the checkpoint is
            already past this run's last epoch.
    """

    def __init__(self, ckpt_dir: str | os.PathLike, prefix: str, load_dict: dict, enabled: bool = False) -> None:
        self.ckpt_dir, self.prefix, self.load_dict, self.enabled = Path(ckpt_dir), prefix, load_dict, bool(enabled)

    def last_checkpoint(self) -> tuple[Path, dict] | None:
        """The newest checkpoint that loads, and its content."""
        for _, path in reversed(RunLayout.checkpoints_in(self.ckpt_dir, self.prefix)):
            try:
                return path, torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # noqa: BLE001 - any unreadable file: fall back to the previous one
                logger.warning("resume: skipping %s, which cannot be read (%s)", path, error)
        return None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        found = self.last_checkpoint()
        if found is None:
            logger.info("resume: no %s checkpoint in %s, starting at epoch 1", self.prefix, self.ckpt_dir)
            return
        path, checkpoint = found
        trainer = checkpoint.get("trainer", {})
        saved_epochs, max_epochs = trainer.get("max_epochs"), engine.state.max_epochs
        done = int(trainer.get("epoch", trainer.get("iteration", 0) // max(int(trainer.get("epoch_length") or 1), 1)))
        if done >= max_epochs:
            raise ValueError(f"resume: {path} has already trained {done} epochs, this run has {max_epochs}; nothing to resume.")
        scheduler = self.load_dict.get("lr_scheduler")
        stretch = saved_epochs is not None and int(saved_epochs) != int(max_epochs) and scheduler is not None
        if stretch and not (hasattr(scheduler, "total_iters") and hasattr(scheduler, "_get_closed_form_lr")):
            raise ValueError(
                f"resume: {path} was written by a run of {saved_epochs} epochs, this run has {max_epochs}, and its "
                f"{type(scheduler).__name__} cannot be stretched; resume with {saved_epochs} epochs or start afresh."
            )
        logger.info("resume: loading %s", path)
        CheckpointLoader(load_path=str(path), load_dict={**self.load_dict, "trainer": engine}, map_location="cpu").attach(engine)
        if stretch:
            engine.add_event_handler(Events.STARTED, self._stretch_schedule, scheduler, int(saved_epochs))

    @staticmethod
    def _stretch_schedule(engine: Engine, scheduler, saved_epochs: int) -> None:
        """After the checkpoint is loaded: the schedule over this run's epochs, from the epoch it resumes at."""
        scheduler.total_iters = engine.state.max_epochs
        for group, lr in zip(scheduler.optimizer.param_groups, scheduler._get_closed_form_lr()):
            group["lr"] = lr
        logger.info(
            "resume: learning-rate schedule stretched from %d to %d epochs (lr %.3g at epoch %d)",
            saved_epochs, engine.state.max_epochs, scheduler.optimizer.param_groups[0]["lr"], engine.state.epoch + 1,
        )
