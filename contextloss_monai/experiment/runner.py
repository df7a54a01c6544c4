"""Running a bundle's stages from Python — the paper's experiment: pretrain once, fine-tune with each
method from the same checkpoint, evaluate (with Algorithm 2 for the fine-tuned methods).

Every stage goes through ``monai.bundle.run`` with the bundle's own configs; outputs go to a work
folder (``bundle_root`` override, laid out by :class:`~contextloss_monai.layout.RunLayout`), never into the
bundle. Finished stages are skipped and an interrupted training stage continues from its last epoch's
checkpoint (the bundle's ``resume``), so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from contextloss_monai.experiment.migrate import check_naming
from contextloss_monai.experiment.results import epoch_seconds, stage_steps
from contextloss_monai.experiment.stage_log import stage_output
from contextloss_monai.layout import RunLayout
from contextloss_monai.method import CONTEXT_LOSS_NAMES, DEFAULT_RESTRICTED, LOSS_NAMES, Method

__all__ = ["FINETUNE_STEPS", "Method", "PRETRAIN_MAX_EPOCHS", "PRETRAIN_PATIENCE", "bundle_setting", "device_override", "evaluate", "finetune", "methods_for", "parse_overrides", "pretrain", "run_experiment", "run_stage"]


#: the benchmark's training lengths (``contextloss benchmark``, ``contextloss calibrate``): pretraining
#: until validation Dice has not improved for PRETRAIN_PATIENCE validations, at most PRETRAIN_MAX_EPOCHS epochs;
#: every method fine-tuned for FINETUNE_STEPS optimizer steps (a handful of steps cannot show a loss's effect)
PRETRAIN_MAX_EPOCHS = 100
PRETRAIN_PATIENCE = 3
FINETUNE_STEPS = 500


def bundle_setting(bundle_dir: str | os.PathLike, key: str, config: str = "train"):
    """The value of ``key`` in the bundle's ``configs/<config>.yaml`` (e.g. its ``synthetic_kind``)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(Path(bundle_dir) / "configs" / f"{config}.yaml"))
    return parser[key]


def device_override(device: str | None = None) -> dict:
    """The bundle override that runs every stage on ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``; ``None``:
    CUDA when available, else the CPU), e.g. ``run_experiment(..., **device_override("cpu"))``.

    Raises:
        ValueError: for a device torch does not know, or CUDA on a machine without it.
    """
    import torch

    try:
        chosen = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as error:
        raise ValueError(f"device must be a torch device such as 'cuda', 'cuda:0' or 'cpu', got {device!r}.") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asks for CUDA, which this machine does not have; use --device cpu.")
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", 0)
    return {"device": f"$torch.device('{chosen}')"}


def parse_overrides(items: list[str]) -> dict:
    """Bundle settings from ``KEY=VALUE`` strings (a script's ``--override``), values parsed as YAML:
    ``["patch_size=[64,64]", "amp=false"]`` → ``{"patch_size": [64, 64], "amp": False}``.

    Raises:
        ValueError: for an item without ``=``.
    """
    import yaml

    bad = [item for item in items if "=" not in item]
    if bad:
        raise ValueError(f"--override takes KEY=VALUE items, got {bad}.")
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def run_stage(bundle_dir: str | os.PathLike, configs: list[str], work_dir: str | os.PathLike, log_name: str | None = None,
              verbose: bool = False, **overrides) -> None:
    """``monai.bundle.run`` of ``configs/<c>.yaml`` (merged in order) with ``bundle_root = work_dir``.

    Args:
        log_name: the stage whose ``logs/<log_name>/stage.log`` receives the log lines (:func:`stage_output`);
            ``None``: they go to the terminal as ``monai.bundle run`` prints them.
        verbose: with ``log_name``, the log lines on the terminal too.
    """
    from monai.bundle import run

    bundle_dir = Path(bundle_dir)
    output = stage_output(RunLayout(work_dir).stage_log(log_name), verbose) if log_name is not None else contextlib.nullcontext()
    with output:
        run(
            config_file=[str(bundle_dir / "configs" / f"{c}.yaml") for c in configs],
            meta_file=str(bundle_dir / "configs" / "metadata.json"),
            logging_file=str(bundle_dir / "configs" / "logging.conf"),
            bundle_root=str(work_dir),
            **overrides,
        )


def pretrain(bundle_dir, work_dir, epochs: int, verbose: bool = False, **overrides) -> Path:
    """Pretraining with Dice & CE → ``models/pretrained.pt`` of ``work_dir`` (skipped when it exists; an
    interrupted run continues from its last epoch's checkpoint). Log lines go to ``logs/pretrain/stage.log``."""
    model = RunLayout(work_dir).pretrained_model
    if not model.is_file():
        run_stage(bundle_dir, ["train"], work_dir, log_name=RunLayout.PRETRAIN_STAGE, verbose=verbose, pretrain_epochs=epochs,
                  **{"resume": True, **overrides})
    return model


def finetune(bundle_dir, work_dir, method: Method, pretrain_epochs: int, verbose: bool = False, **overrides) -> Path:
    """Fine-tuning from ``pretrained.pt`` with ``method`` → ``models/model_<key>.pt`` (skipped when it exists;
    an interrupted run continues from its last epoch's checkpoint). The bundle names the stage and the model
    from the same :class:`~contextloss_monai.method.Method` (``model_per_method``). Log lines go to the stage's ``stage.log``."""
    model = RunLayout(work_dir).model(method.key)
    if not model.is_file():
        run_stage(bundle_dir, ["train", "finetune"], work_dir, log_name=method.stage, verbose=verbose,
                  pretrain_epochs=pretrain_epochs, loss_name=method.loss_name,
                  gamma=method.gamma, restricted=method.restricted, model_per_method=True,
                  **{"resume": True, **overrides})
    return model


def evaluate(bundle_dir, work_dir, method: Method, verbose: bool = False, **overrides) -> dict:
    """Evaluate ``method``'s model on the test list: pretraining only without, fine-tuned methods with
    the topological post-processing (as in the paper's tables). Returns ``eval/<key>/summary.json``; log
    lines go to ``logs/evaluate_<key>/stage.log``."""
    layout = RunLayout(work_dir)
    summary = layout.summary(method.key)
    if not summary.is_file():
        configs = ["inference", "evaluate"] if method.loss_name is None else ["inference", "inference_topo", "evaluate"]
        run_stage(bundle_dir, configs, work_dir, log_name=f"evaluate_{method.key}", verbose=verbose, model_path=str(layout.model(method.key)),
                  evaluation_name=method.key, **overrides)
    return json.loads(summary.read_text())


def methods_for(names: list[str], gammas: list[float], readings: tuple[str, ...] = (DEFAULT_RESTRICTED,)) -> list[Method]:
    """Pretraining only, then each named fine-tuning method (``dice_ce`` once, the others per γ, the
    ContextLoss variants also per reading of the restricted term).

    Args:
        names: loss names of :data:`~contextloss_monai.method.LOSS_NAMES`, each optionally with its own weights,
            ``name:γ`` or ``name:γ1,γ2`` (e.g. ``context:0.2 skeleton_recall:1``: CLoss and Skeleton Recall each at
            its usual weight in one run); a name without weights takes ``gammas``.
        gammas: the weights of the names that give none.
        readings: the readings of the restricted term, for the ContextLoss variants.

    Raises:
        ValueError: naming ``--methods`` for an unknown loss, weights that are not numbers, or weights given to
            ``dice_ce``, which has none; an out-of-range weight is refused by :class:`Method`.
    """
    methods = [Method(None)]
    for spec in names:
        name, has_own, own = str(spec).partition(":")
        if name not in LOSS_NAMES:
            raise ValueError(f"--methods: {name!r} is not a loss; expected one of {sorted(LOSS_NAMES)}, optionally as name:gamma[,gamma...].")
        if has_own and name == "dice_ce":
            raise ValueError(f"--methods: dice_ce has no weight, got {spec!r}.")
        try:
            weights = [float(g) for g in own.split(",")] if has_own else list(gammas)
        except ValueError:
            raise ValueError(f"--methods: {spec!r} must be name:gamma[,gamma...] with numbers for the weights.") from None
        if name == "dice_ce":
            methods.append(Method(name, 0.0))
        else:
            methods += [Method(name, g, r) for g in weights for r in (readings if name in CONTEXT_LOSS_NAMES else (DEFAULT_RESTRICTED,))]
    return list(dict.fromkeys(methods))  # a method asked for twice runs once


def run_experiment(
    bundle_dir, out_dir, dataset_dir, folds: list[int], methods: list[Method], pretrain_epochs: int, verbose: bool = False, **overrides
) -> list[dict]:
    """For each fold: pretrain once, fine-tune every method from that checkpoint, evaluate each; one row per
    fold and method with the summary means and the fine-tuning seconds per epoch. Finished stages are skipped.
    Each stage shows one progress bar; its log lines go to its ``stage.log`` (and the terminal with ``verbose``).

    Raises:
        ValueError: for a fold folder whose files are named by the earlier naming rule (:func:`check_naming`).
    """
    rows = []
    for fold in folds:
        work = check_naming(RunLayout.of_fold(out_dir, fold)).root
        common = dict(dataset_dir=str(dataset_dir), fold=fold, **overrides)
        pretrain(bundle_dir, work, pretrain_epochs, verbose, **common)
        for method in methods:
            if method.loss_name is not None:
                finetune(bundle_dir, work, method, pretrain_epochs, verbose, **common)
            summary = evaluate(bundle_dir, work, method, verbose, **{k: v for k, v in common.items() if k != "fold"})
            stage = method.stage
            seconds = epoch_seconds(work, stage)  # the epochs the stage really ran
            row = {"fold": fold, "method": method.label, "key": method.key, "epochs": len(seconds), "steps": stage_steps(work, stage),
                   "seconds_per_epoch": round(sum(seconds) / len(seconds), 3) if seconds else math.nan}
            row.update({k: v["mean"] for k, v in summary["metrics"].items()})
            rows.append(row)
    return rows
