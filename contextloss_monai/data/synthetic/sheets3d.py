"""Volumes of thin curved layers that meet and branch, the synthetic counterpart of CLD (bone cement lines)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from contextloss_monai.data.synthetic.common import SyntheticSample, ball_mask, smooth_noise, volume_shape
from contextloss_monai.topology.components import label_components

__all__ = ["LAYER_FADING", "LAYER_FADING_SIGMA", "make_sheets3d"]

#: along every layer the contrast is multiplied by ``clip(mean + std · z, 0.05, 1)``, ``z`` smooth unit noise
#: over about six voxels: the layers fade out over large stretches and come back, as cement lines do in
#: micro-CT (partly visible, the rest implied by the osteon's shape). Set on 2026-11-28 from the pretrained
#: model (``contextloss calibrate``, one run each): AGS 99.0 without it, 91.6 with (0.45, 0.6) over
#: 4 voxels, 78.2 with this (paper's CLD row 79 ± 5)
LAYER_FADING = (0.2, 0.6)
#: the fading's correlation length in voxels (Gaussian sigma of the noise ``z``)
LAYER_FADING_SIGMA = 6.0


def make_sheets3d(size: int = 64, seed: int = 0, depth: int | None = None) -> SyntheticSample:
    """A 3D single-channel volume of thin curved sheets (2–4 voxels thick) that meet and branch.

    Cement lines wrap osteons: the generator draws several wobbly cylindrical shells running roughly
    along the last axis (their centre drifts, their radius varies with angle and depth) and one wavy
    sheet across the volume; where shells cross each other or the sheet, layers meet and branch. The
    image is a textured background with a low-contrast, blurred (diffuse-bordered) copy of the layers,
    noise and streak artifacts (bright and dark lines along the first axis). Along every layer the contrast
    fades out and back (:data:`LAYER_FADING`), so stretches of a layer are hardly visible. The ``n_hard``
    places are faint patches where the layer contrast falls to 10 %.

    Args:
        size: in-plane edge length in voxels.
        seed: random seed; the same seed gives identical arrays.
        depth: number of slices, default ``0.6 * size`` (CLD volumes are 1024² × 600).

    Returns:
        a :class:`SyntheticSample` with ``image`` ``(size, size, depth, 1)`` ``float32`` and ``label``
        ``(size, size, depth)`` ``uint8``. ``metadata`` holds ``n_hard`` (= ``n_faint``), ``hard_places``
        (``[x, y, z, radius]`` per faint patch), ``n_shells``,
        ``n_streaks`` and ``label_components``.

    Raises:
        ValueError: when ``size`` or ``depth`` is below 16.

    Example:
        >>> sample = make_sheets3d(size=32, seed=0)
        >>> sample.image.shape, sample.label.shape
        ((32, 32, 19, 1), (32, 32, 19))
    """
    size, depth = volume_shape(size, depth, depth_fraction=0.6)
    rng = np.random.default_rng(seed)
    shape = (size, size, depth)
    x, y, z = np.meshgrid(np.arange(size), np.arange(size), np.arange(depth), indexing="ij", sparse=True)
    zn = z / max(depth - 1, 1)

    # --- osteon shells: |distance to a drifting axis - wobbly radius| <= thickness / 2
    label = np.zeros(shape, dtype=bool)
    n_shells = int(rng.integers(3, 6))
    for _ in range(n_shells):
        c0, drift = rng.uniform(0.2, 0.8, 2) * size, rng.normal(0, 0.08 * size, 2)
        cx, cy = c0[0] + drift[0] * zn, c0[1] + drift[1] * zn
        radius = rng.uniform(0.12, 0.25) * size
        theta = np.arctan2(y - cy, x - cx)
        lobes, phase = int(rng.integers(2, 5)), rng.uniform(0, 2 * np.pi)
        wobble = radius * (1 + 0.12 * np.sin(lobes * theta + phase + 2 * zn))
        thickness = rng.uniform(2.0, 4.0)
        label |= np.abs(np.hypot(x - cx, y - cy) - wobble) <= thickness / 2
    # --- one wavy sheet across the volume, crossing the shells
    offset = rng.uniform(0.35, 0.65) * size
    amplitude, frequency = rng.uniform(0.03, 0.08) * size, rng.uniform(1.0, 2.5)
    surface = offset + amplitude * np.sin(2 * np.pi * frequency * y / size + rng.uniform(0, 2 * np.pi)) + 0.05 * size * zn
    label |= np.abs(x - surface) <= rng.uniform(2.0, 4.0) / 2

    # --- faint patches (the hard places)
    visibility = np.ones(shape, dtype=np.float32)
    n_faint = int(rng.integers(2, 5)) + size // 128
    candidates = np.argwhere(label)
    hard_places = []
    for index in rng.choice(len(candidates), size=n_faint, replace=False):
        radius = rng.uniform(0.06, 0.1) * size
        visibility[ball_mask(shape, candidates[index], radius)] = 0.1
        hard_places.append([int(c) for c in candidates[index]] + [round(float(radius), 2)])
    fading = LAYER_FADING[0] + LAYER_FADING[1] * smooth_noise(rng, shape, sigma=LAYER_FADING_SIGMA)
    visibility *= np.clip(fading, 0.05, 1.0)

    # --- image: texture, low-contrast diffuse layers, streaks, noise
    texture = 0.5 + 0.05 * smooth_noise(rng, shape, sigma=3.0) + 0.03 * smooth_noise(rng, shape, sigma=1.0)
    layers = ndimage.gaussian_filter(label.astype(np.float32), sigma=1.2)
    image = texture + 0.35 * layers * visibility
    n_streaks = int(rng.integers(4, 10))
    for _ in range(n_streaks):
        row, col = int(rng.integers(size)), int(rng.integers(depth))
        image[:, max(row - 1, 0) : row + 1, col] += rng.choice([-1, 1]) * rng.uniform(0.08, 0.15)
    image += 0.05 * rng.standard_normal(shape)

    metadata = {
        "kind": "sheets3d",
        "seed": int(seed),
        "n_hard": n_faint,
        "n_faint": n_faint,
        "hard_places": hard_places,
        "n_shells": n_shells,
        "n_streaks": n_streaks,
        "label_components": int(label_components(label, connectivity=26)[1]),
    }
    return SyntheticSample(
        image=image[..., None].astype(np.float32), label=label.astype(np.uint8), spacing=(1.0, 1.0, 1.0), metadata=metadata
    )
