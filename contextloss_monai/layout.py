"""Where a bundle run keeps its files, and what its stages are called: the one owner of the run layout.

A run lives in one folder, the bundle's ``bundle_root`` (the bundle folder itself, or a work folder that
``contextloss_monai.experiment`` passes as ``bundle_root``)::

    models/pretrained.pt                         pretraining (Dice & CE)
    models/model.pt                              the fine-tuned model the bundle serves
    models/model_<method key>.pt                 one fine-tuned model per method (experiments)
    models/<stage>_checkpoint_epoch=<N>.pt       resumable training state of a stage
    logs/<stage>/training_log.csv                one row per epoch
    logs/<stage>/stage.log                       the log lines of a stage the experiment runner ran
                                                 (evaluations: logs/evaluate_<evaluation name>/stage.log)
    eval/predictions/, eval/predictions_topo/    inference (one model / Algorithm 2)
    eval/<evaluation name>/metrics.csv           per-image metrics of an evaluation
    eval/<evaluation name>/summary.json          their mean, std and count
    logs/naming.json                             the naming rule of the keys (experiment runs)

Stages: ``pretrain``, and ``finetune_<method key>`` where the method key (:attr:`contextloss_monai.method.Method.key`)
names the fine-tuning loss, its γ and, where it is not the default, the reading of CLoss's restricted term:
``finetune_context_g0.2``, ``finetune_context_g0.2_mask_mean``, ``finetune_dice_ce``. The bundle configs build
their paths and stage names from :class:`RunLayout`, and so does the experiment runner.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout"]


@dataclass(frozen=True, init=False)
class RunLayout:
    """The files of one bundle run under ``root`` (see the module docstring for the tree).

    Args:
        root: the run's folder (a bundle's ``bundle_root``).

    Example:
        >>> layout = RunLayout.of_fold("outputs/demo", 0)  # RunLayout("outputs/demo/fold0")
        >>> layout.training_log(RunLayout.stage_of("context_g0.2"))
        PosixPath('outputs/demo/fold0/logs/finetune_context_g0.2/training_log.csv')
    """

    root: Path

    PRETRAIN_STAGE = "pretrain"
    PRETRAINED_MODEL = "pretrained.pt"
    FINETUNED_MODEL = "model.pt"
    PRETRAINED_KEY = "pretrained"
    TRAINING_LOG = "training_log.csv"
    STAGE_LOG = "stage.log"
    #: the naming rule of the method keys a run folder's files carry (:mod:`contextloss_monai.method`), recorded in
    #: ``logs/naming.json`` by the experiment runner; a folder without the record was named by the earlier rule
    NAMING_RULE = 2
    METRICS_CSV = "metrics.csv"
    SUMMARY_JSON = "summary.json"
    #: run outputs that never go into a bundle zip (relative to the bundle, ``fnmatch`` patterns)
    RUN_OUTPUTS = ("data/*", "logs/*", "eval/*", "models/*_checkpoint_epoch=*.pt")

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def of_fold(cls, out_dir: str | os.PathLike, fold: int) -> "RunLayout":
        """The layout of one fold's run inside an experiment folder (``out_dir/fold<fold>``)."""
        return cls(Path(out_dir) / f"fold{fold}")

    # names ------------------------------------------------------------------------------------------
    @staticmethod
    def stage_of(key: str) -> str:
        """The training stage that produced the model of a method key (``pretrained`` → ``pretrain``)."""
        return RunLayout.PRETRAIN_STAGE if key == RunLayout.PRETRAINED_KEY else f"finetune_{key}"

    @staticmethod
    def model_filename(key: str | None = None) -> str:
        """``pretrained.pt`` for the pretrained key, ``model_<key>.pt`` for a method, ``model.pt`` for ``None``."""
        if key is None:
            return RunLayout.FINETUNED_MODEL
        return RunLayout.PRETRAINED_MODEL if key == RunLayout.PRETRAINED_KEY else f"model_{key}.pt"

    # paths ------------------------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def pretrained_model(self) -> Path:
        return self.models_dir / self.PRETRAINED_MODEL

    def model(self, key: str | None = None) -> Path:
        """The weights of a method key (``None``: the served fine-tuned model ``models/model.pt``)."""
        return self.models_dir / self.model_filename(key)

    def checkpoint(self, stage: str, epoch: int) -> Path:
        """The resumable state of ``stage`` after ``epoch`` (the name MONAI's ``CheckpointSaver`` writes)."""
        return self.models_dir / f"{stage}_checkpoint_epoch={int(epoch)}.pt"

    def checkpoints(self, stage: str) -> list[tuple[int, Path]]:
        """``(epoch, path)`` of every checkpoint of ``stage`` in ``models/``, oldest first."""
        return self.checkpoints_in(self.models_dir, stage)

    @staticmethod
    def checkpoints_in(models_dir: str | os.PathLike, stage: str) -> list[tuple[int, Path]]:
        """``(epoch, path)`` of every ``<stage>_checkpoint_epoch=<N>.pt`` in ``models_dir``, oldest first."""
        pattern = re.compile(rf"^{re.escape(stage)}_checkpoint_epoch=(\d+)\.pt$")
        found = [(int(m.group(1)), p) for p in Path(models_dir).glob(f"{stage}_checkpoint_epoch=*.pt") if (m := pattern.match(p.name))]
        return sorted(found)

    @property
    def naming_record(self) -> Path:
        """``logs/naming.json``: the naming rule (:attr:`NAMING_RULE`) the run's method keys follow."""
        return self.root / "logs" / "naming.json"

    def has_outputs(self) -> bool:
        """Whether anything was written under ``models/``, ``logs/`` or ``eval/``."""
        return any(d.is_dir() and any(d.iterdir()) for d in (self.models_dir, self.root / "logs", self.root / "eval"))

    def log_dir(self, stage: str) -> Path:
        return self.root / "logs" / stage

    def stage_log(self, stage: str) -> Path:
        """The log lines of ``stage`` (``pretrain``, ``finetune_<key>``, ``evaluate_<evaluation name>``)."""
        return self.log_dir(stage) / self.STAGE_LOG

    def training_log(self, stage: str) -> Path:
        return self.log_dir(stage) / self.TRAINING_LOG

    def predictions_dir(self, topo: bool = False) -> Path:
        """Where inference writes ``<case>_seg.nii.gz``: one model, or Algorithm 2 with ``topo``."""
        return self.root / "eval" / ("predictions_topo" if topo else "predictions")

    def eval_dir(self, name: str) -> Path:
        """The folder of the evaluation ``name`` (predictions, ``metrics.csv``, ``summary.json``)."""
        return self.root / "eval" / name

    def summary(self, name: str) -> Path:
        return self.eval_dir(name) / self.SUMMARY_JSON

    def image_metrics(self, name: str) -> Path:
        """The per-image metrics of the evaluation ``name`` (one row per test image)."""
        return self.eval_dir(name) / self.METRICS_CSV

    def prediction(self, name: str, case: str) -> Path:
        """The prediction of ``case`` saved by the evaluation ``name``."""
        return self.eval_dir(name) / f"{case}_seg.nii.gz"
