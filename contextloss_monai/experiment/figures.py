"""PNG figures a person would rather see than read: training curves and gap overlays."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from contextloss_monai.utils import read_csv_rows

__all__ = ["gap_overlay", "label_gaps", "plot_gap_overlay", "plot_training_curves"]

# overlay colours (RGB in [0, 1])
COVERED = (0.2, 0.8, 0.2)  # label centre line covered by both predictions
CLOSED = (0.2, 0.5, 1.0)  # covered by the ContextLoss prediction only: a gap it closed
OPEN = (1.0, 0.15, 0.15)  # covered by neither: a gap still open
LOST = (1.0, 0.6, 0.0)  # covered by the baseline only
CRITICAL = (1.0, 1.0, 0.0)  # critical pixel mask of the baseline prediction


def _agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | os.PathLike, title: str, dpi: int) -> Path:
    """Give ``fig`` its title, write it as PNG to ``path`` (creating the folder), close it, return the path."""
    plt = _agg()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_training_curves(logs: Mapping[str, str | os.PathLike], path: str | os.PathLike, title: str = "") -> Path:
    """Loss and validation Dice per optimizer step (per epoch for logs without a ``steps`` column) of several
    stages (``label -> training_log.csv``), each fine-tuning stage drawn after the pretraining it started from."""
    plt = _agg()
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    tables = {label: read_csv_rows(csv_path) for label, csv_path in logs.items()}
    tables = {label: rows for label, rows in tables.items() if rows}
    unit = "steps" if tables and all(rows[0].get("steps") for rows in tables.values()) else "epoch"  # one axis for all
    offset = 0
    for label, rows in tables.items():
        start = 0 if label.startswith("pretrain") else offset
        epochs = [start + int(r[unit]) for r in rows]
        ax_loss.plot(epochs, [float(r["loss"]) for r in rows], label=label)
        dice = [(e, float(r["val_mean_dice"])) for e, r in zip(epochs, rows) if r.get("val_mean_dice")]
        if dice:
            ax_dice.plot(*zip(*dice), marker="o", label=label)
        if label.startswith("pretrain"):
            offset = epochs[-1]
    x_label = "optimizer step" if unit == "steps" else "epoch"
    ax_loss.set(xlabel=x_label, ylabel="training loss (deep supervision sum)", title="loss")
    ax_dice.set(xlabel=x_label, ylabel="validation Dice", title="validation Dice")
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save_figure(fig, path, title, dpi=100)


def label_gaps(label: np.ndarray, baseline: np.ndarray, closs: np.ndarray, min_length: int = 3) -> list[dict]:
    """The gaps the baseline leaves in the label's centre line and whether the ContextLoss prediction closes them.

    A gap is a connected stretch (8-connected) of the label's exact skeleton that ``baseline`` does not cover,
    at least ``min_length`` pixels long; it counts as closed when ``closs`` covers at least half of it.

    Args:
        label, baseline, closs: 2D binary arrays ``(H, W)``.
        min_length: shorter uncovered stretches (a pixel at a road's end) are not gaps.

    Returns:
        one ``{"centre": (row, col), "radius": float, "length": int, "closed": bool}`` per gap, longest first.
    """
    from contextloss_monai.topology import skeletonize
    from contextloss_monai.topology.components import label_components

    skeleton = skeletonize(label[None, None].astype(bool), method="exact")[0, 0]
    uncovered = skeleton & ~baseline.astype(bool)
    components, count = label_components(uncovered, connectivity=8)
    gaps = []
    for index in range(1, count + 1):
        points = np.argwhere(components == index)
        if len(points) < min_length:
            continue
        covered = closs.astype(bool)[tuple(points.T)].mean()
        centre = points.mean(0)
        radius = float(np.sqrt(((points - centre) ** 2).sum(1).max())) + 4.0
        gaps.append({"centre": tuple(float(c) for c in centre), "radius": radius, "length": len(points), "closed": bool(covered >= 0.5)})
    return sorted(gaps, key=lambda g: -g["length"])


def gap_overlay(label: np.ndarray, baseline: np.ndarray, closs: np.ndarray, critical: np.ndarray | None = None) -> np.ndarray:
    """RGB overlay ``(H, W, 3)`` of the label's centre line: covered by both predictions (green), closed
    by the ContextLoss prediction only (blue), still open (red), covered by the baseline only (orange);
    ``critical`` (the baseline's critical pixel mask) shaded yellow underneath."""
    from contextloss_monai.topology import skeletonize

    skeleton = skeletonize(label[None, None].astype(bool), method="exact")[0, 0]
    overlay = np.zeros(label.shape + (3,), dtype=np.float32)
    overlay[label.astype(bool)] = 0.25
    if critical is not None:
        overlay[critical.astype(bool)] = np.array(CRITICAL) * 0.6
    base, new = baseline.astype(bool), closs.astype(bool)
    for mask, colour in ((skeleton & base & new, COVERED), (skeleton & ~base & new, CLOSED),
                         (skeleton & ~base & ~new, OPEN), (skeleton & base & ~new, LOST)):
        overlay[mask] = colour
    return overlay


def plot_gap_overlay(
    image: np.ndarray, label: np.ndarray, baseline: np.ndarray, closs: np.ndarray, path: str | os.PathLike,
    critical: np.ndarray | None = None, names: tuple[str, str] = ("Dice & CE", "CLoss"), title: str = "",
    gaps: list[dict] | None = None,
) -> Path:
    """One row of panels for a 2D case: image, label, both predictions and the gap overlay
    (:func:`gap_overlay`); every local gap the baseline leaves (:func:`label_gaps`; radius up to 1/8 of the image)
    is ringed on the image and the overlay, blue when ``closs`` closed it, red when it is still open. ``image`` is ``(H, W)`` or ``(H, W, 3)``;
    ``gaps``: the caller's :func:`label_gaps` of these arrays, computed here when not given."""
    plt = _agg()
    from matplotlib.patches import Circle, Patch

    fig, axes = plt.subplots(1, 5, figsize=(20, 4.4))
    shown = image.astype(np.float32)
    shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-8)
    panels = [(shown, "image"), (label, "label"), (baseline, names[0]), (closs, names[1]),
              (gap_overlay(label, baseline, closs, critical), "label centre line")]
    for ax, (data, name) in zip(axes, panels):
        ax.imshow(data, cmap=None if data.ndim == 3 else "gray", interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    for gap in label_gaps(label, baseline, closs) if gaps is None else gaps:  # each gap the baseline leaves, ringed: closed or still open
        if gap["radius"] > max(label.shape) / 8:
            continue  # a whole missed road: its red centre line shows it, a ring would cover the image
        colour = CLOSED if gap["closed"] else OPEN
        for ax in (axes[0], axes[-1]):
            ax.add_patch(Circle(gap["centre"][::-1], gap["radius"], fill=False, edgecolor=colour, linewidth=1.5))
    legend = [Patch(color=COVERED, label="covered by both"), Patch(color=CLOSED, label=f"gap closed by {names[1]}"),
              Patch(color=OPEN, label=f"gap still open (rings: gaps of {names[0]})"), Patch(color=LOST, label=f"covered by {names[0]} only")]
    if critical is not None:
        legend.append(Patch(color=np.array(CRITICAL) * 0.6, label=f"critical mask of {names[0]}"))
    axes[-1].legend(handles=legend, loc="lower left", fontsize=7, framealpha=0.8)
    return _save_figure(fig, path, title, dpi=90)
