"""Loading a stage's starting weights with an error that names the bundle setting."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from contextloss_monai.checks import check_positive_int

__all__ = ["load_weights", "finetune_epochs"]


def load_weights(network: torch.nn.Module, path: str | os.PathLike, setting: str = "model_path") -> torch.nn.Module:
    """Load a checkpoint into ``network`` (strictly) and return the network.

    The checkpoint may be a plain ``state_dict`` or a dictionary holding it under ``"model"`` (what
    MONAI's ``CheckpointSaver`` writes); a ``DistributedDataParallel``'s ``module.`` prefix is ignored.

    Raises:
        FileNotFoundError: when ``path`` does not exist (naming ``setting``).
        ValueError: when the file is not a readable checkpoint (empty, text, truncated, pickled objects other
            than tensors), when the checkpoint does not fit ``network`` (naming ``setting`` and the first
            mismatching parameters) — e.g. weights of another ``network_def`` — or holds NaN / infinite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{setting} {path} does not exist; run the stage that writes it first.")
    try:  # weights_only: a checkpoint is data, never code to run
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - empty, text, truncated or pickled-code files alike: name the file
        raise ValueError(
            f"{setting} {path} is not a readable PyTorch checkpoint ({type(error).__name__}: {str(error)[:200]}); "
            "run the stage that writes it again."
        ) from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in checkpoint.items()):
        raise ValueError(f"{setting} {path} holds no state_dict (parameter names -> tensors); it cannot be used.")
    checkpoint = {k[len("module."):] if k.startswith("module.") else k: v for k, v in checkpoint.items()}
    target = network.module if hasattr(network, "module") else network
    expected = target.state_dict()
    missing = sorted(set(expected) - set(checkpoint))
    unexpected = sorted(set(checkpoint) - set(expected))
    wrong = sorted(k for k in set(expected) & set(checkpoint) if expected[k].shape != checkpoint[k].shape)
    if missing or unexpected or wrong:
        details = []
        if wrong:
            details.append("shape mismatch for " + ", ".join(f"{k} {tuple(checkpoint[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:3]))
        if missing:
            details.append(f"{len(missing)} parameters missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected parameters (e.g. {unexpected[0]})")
        raise ValueError(f"{setting} {path} does not fit the bundle's network_def: " + "; ".join(details) + ".")
    bad = [k for k, v in checkpoint.items() if torch.is_tensor(v) and torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"{setting} {path} holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]}); it cannot be used.")
    target.load_state_dict(checkpoint)
    return network


def finetune_epochs(pretrain_epochs: int, fraction: float = 0.05, steps: int | None = None, steps_per_epoch: int | None = None) -> int:
    """Fine-tuning length in epochs: ``steps`` optimizer steps rounded up to whole epochs of ``steps_per_epoch``
    when ``steps`` is given, else ``fraction`` of the pretraining epochs; at least 1 (the paper: 50 of 1000
    epochs of 250 steps).

    Raises:
        ValueError: for a non-positive ``pretrain_epochs``, a ``fraction`` outside (0, 1], or a non-positive
            ``steps`` / ``steps_per_epoch``.
    """
    if steps is not None:
        steps, steps_per_epoch = check_positive_int(steps, "finetune_steps"), check_positive_int(steps_per_epoch, "steps_per_epoch")
        return -(-steps // steps_per_epoch)
    if int(pretrain_epochs) <= 0 or not 0 < float(fraction) <= 1:
        raise ValueError(f"pretrain_epochs must be positive and fraction in (0, 1], got {pretrain_epochs}, {fraction}.")
    return max(1, int(round(int(pretrain_epochs) * float(fraction))))
