"""Hand-made masks with known topological errors, and bundle copies, shared by the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def requires_cuda(test):
    """A CUDA test: selected by ``pytest -m cuda``, skipped (never faked) where no CUDA device is present."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(test))


def line_with_gap(gap: tuple[int, int] = (18, 22)) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3-px horizontal line across a 9x40 image (label) and its prediction with a gap of columns ``gap``."""
    label = torch.zeros(1, 1, 9, 40, dtype=torch.bool)
    label[..., 3:6, :] = True
    pred = label.clone()
    pred[..., gap[0] : gap[1]] = False
    return pred, label


def parallel_lines_with_bridge() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 3-px parallel lines (label, rows 3:6 and 13:16) and a prediction that bridges them (cols 18:22)."""
    label = torch.zeros(1, 1, 20, 40, dtype=torch.bool)
    label[..., 3:6, :] = True
    label[..., 13:16, :] = True
    pred = label.clone()
    pred[..., 6:13, 18:22] = True
    return pred, label


def tube_with_gap() -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3-voxel tube along the last axis of an 11x11x40 volume, and its prediction with a gap at 18:22."""
    label = torch.zeros(1, 1, 11, 11, 40, dtype=torch.bool)
    label[..., 4:7, 4:7, :] = True
    pred = label.clone()
    pred[..., 18:22] = False
    return pred, label


def tubes_with_bridge() -> tuple[torch.Tensor, torch.Tensor]:
    """Two parallel tubes (label) and a prediction with a false bridge between them at z 18:22."""
    label = torch.zeros(1, 1, 11, 21, 40, dtype=torch.bool)
    label[..., 4:7, 3:6, :] = True
    label[..., 4:7, 15:18, :] = True
    pred = label.clone()
    pred[..., 4:7, 6:15, 18:22] = True
    return pred, label


def logits_from(mask: torch.Tensor, scale: float = 4.0) -> torch.Tensor:
    """Two-channel logits (background, foreground) whose arg-max is ``mask`` (B, 1, ...)."""
    fg = (mask.float() * 2 - 1) * scale
    return torch.cat([-fg, fg], dim=1)


def copy_bundle(name: str, dest: Path, weights: bool = True) -> Path:
    """Copy ``bundles/<name>`` to ``dest/<name>`` without run outputs; with ``weights``, random weights of
    its ``network_def`` in ``models/model.pt`` (a clean clone has no ``models/`` folder: it is created)."""
    from monai.bundle import ConfigParser

    bundle = dest / name
    shutil.copytree(ROOT / "bundles" / name, bundle, ignore=shutil.ignore_patterns("data", "logs", "eval", "*.pt"))
    (bundle / "models").mkdir(exist_ok=True)
    if weights:
        parser = ConfigParser()
        parser.read_config(str(bundle / "configs/inference.yaml"))
        torch.manual_seed(0)
        torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models/model.pt")
    return bundle


@pytest.fixture(params=["soft", "exact"])
def skeleton_method(request) -> str:
    return request.param
