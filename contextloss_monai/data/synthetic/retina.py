"""Fundus-like images with branching vessel trees, the synthetic counterpart of HRF."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from contextloss_monai.data.synthetic.common import SyntheticSample, ball_mask, capsule_field, smooth_noise
from contextloss_monai.topology.components import label_components
from contextloss_monai.checks import check_positive_int

__all__ = ["THIN_FLICKER", "make_retina"]

#: along the thin vessels (under half the main vessels' width) the contrast is multiplied by
#: ``clip(mean + std · z, 0.1, 1)``, ``z`` smooth unit noise over about four steps of the vessel (10 px at
#: 256²): they fade in and out, as HRF's capillary-sized vessels do. (mean, std) as set on 2026-11-28 from
#: the pretrained model (``contextloss calibrate``): AGS 82.6 without it, 73.6 with (0.75, 0.4)
#: over 5 px, 74.2 with this (paper's HRF row 77.8 ± 5); e0-Gt 0.59 / 0.71 / 0.65, still far below the
#: paper's 2.78 — the network misses faded stretches rather than finding them in pieces
THIN_FLICKER = (0.85, 0.55)


def _grow_tree(
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    width: float,
    length: float,
    min_width: float,
    step: float,
    segments: list,
    fov: np.ndarray,
) -> None:
    """Grow one vessel as a smooth random walk that tapers to 70 % of ``width``, spawning thinner
    branches (recursively) until the width falls below ``min_width``; a vessel stops where it leaves the
    field of view ``fov``."""
    n_steps = max(2, int(length / step))
    branch_at = set(rng.choice(np.arange(1, n_steps), size=min(n_steps - 1, int(rng.integers(2, 5))), replace=False))
    point, turn = start.astype(np.float64), rng.normal(0, 0.03)
    for i in range(n_steps):
        w0 = width * (1 - 0.3 * i / n_steps)
        w1 = width * (1 - 0.3 * (i + 1) / n_steps)
        turn = 0.8 * turn + rng.normal(0, 0.04)
        angle += turn
        nxt = point + step * np.array([np.cos(angle), np.sin(angle)])
        row, col = np.round(nxt).astype(int)
        if not (0 <= row < fov.shape[0] and 0 <= col < fov.shape[1] and fov[row, col]):
            return
        segments.append((point, nxt, w0, w1))
        if i in branch_at and w1 * 0.7 >= min_width:
            side = rng.choice([-1, 1])
            _grow_tree(rng, nxt, angle + side * rng.uniform(0.5, 1.1), w1 * rng.uniform(0.55, 0.8),
                       length * rng.uniform(0.4, 0.7), min_width, step, segments, fov)
        point = nxt


def make_retina(size: int = 256, seed: int = 0) -> SyntheticSample:
    """A 2D RGB fundus-like image: circular field of view, vessel trees from the optic disc.

    Four main vessels leave the optic disc (two arcades above, two below) and branch recursively,
    tapering from about 1.2 % of the image width down to 1.2 px; thin vessels get a contrast that
    falls with their width, down to the noise level, and fades in and out along their course
    (:data:`THIN_FLICKER`). Uneven illumination, vignetting, a bright optic
    disc, a darker macula and noise complete the image. The ``n_hard`` places are short stretches
    where a vessel fades almost completely (contrast × 0.1) — where a pixel-wise model cuts the tree.

    Args:
        size: edge length in pixels (square image).
        seed: random seed; the same seed gives identical arrays.

    Returns:
        a :class:`SyntheticSample` with ``image`` ``(size, size, 3)`` ``uint8``, ``label`` ``(size, size)``
        ``uint8`` (vessels inside the field of view) and ``mask`` (the field of view). ``metadata``
        holds ``n_hard`` (= ``n_faint``), ``hard_places`` (``[row, col, radius]`` per faint stretch),
        ``n_segments`` and ``label_components``.

    Raises:
        ValueError: when ``size`` is not a positive integer of at least 64.

    Example:
        >>> sample = make_retina(size=128, seed=0)
        >>> sample.image.shape, sample.mask.shape
        ((128, 128, 3), (128, 128))
    """
    size = check_positive_int(size, "size")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels for a fundus image, got {size}.")
    rng = np.random.default_rng(seed)
    shape = (size, size)
    centre = np.array([size / 2, size / 2]) + rng.normal(0, 0.01 * size, 2)
    fov = ball_mask(shape, centre, 0.46 * size)
    side = rng.choice([-1, 1])  # optic disc left or right of the centre
    disc = centre + np.array([rng.normal(0, 0.03 * size), side * 0.22 * size])

    # --- vessel trees: arcades above and below the disc, two smaller nasal vessels
    segments: list = []
    main_width = max(3.0, 0.012 * size)
    step = max(2.0, size / 100)
    # directions are angles a with (row, col) = (cos a, sin a); the macula lies at -side along the columns
    for vertical in (-1, 1):
        arcade = np.arctan2(-side * 0.5, vertical * 1.0)
        _grow_tree(rng, disc, arcade + rng.normal(0, 0.1), main_width, 0.8 * size, 1.2, step, segments, fov)
        nasal = np.arctan2(side * 0.8, vertical * 1.0)
        _grow_tree(rng, disc, nasal + rng.normal(0, 0.1), 0.7 * main_width, 0.45 * size, 1.2, step, segments, fov)
    starts = np.array([s[0] for s in segments])
    ends = np.array([s[1] for s in segments])
    w_start = np.array([s[2] for s in segments])
    w_end = np.array([s[3] for s in segments])
    vessel_field = capsule_field(shape, starts, ends, np.maximum(w_start / 2, 0.6), np.maximum(w_end / 2, 0.6))
    label = (vessel_field <= 1.0) & fov

    # --- width map (for the width-dependent contrast): the width of the nearest vessel segment
    width_map = np.zeros(shape, dtype=np.float32)
    order = np.argsort(-w_start)  # thin vessels drawn last win where they overlap thick ones
    for k in order:
        single = capsule_field(shape, starts[k : k + 1], ends[k : k + 1], max(w_start[k], 1.2))
        width_map[single <= 1.0] = w_start[k]
    contrast = 0.55 * np.clip(width_map / main_width, 0, 1) ** 1.2 + 0.02
    visibility = np.ones(shape, dtype=np.float32)
    thin = np.flatnonzero(w_start < 0.5 * main_width)
    pool = thin if len(thin) else np.arange(len(segments))
    n_faint = int(rng.integers(2, 5)) + size // 512
    hard_places = []
    for k in rng.choice(pool, size=n_faint, replace=len(pool) < n_faint):
        point = starts[k] + rng.uniform(0.2, 0.8) * (ends[k] - starts[k])
        radius = rng.uniform(2.0, 4.0) * step
        visibility[ball_mask(shape, point, radius)] = 0.1
        hard_places.append([round(float(c), 2) for c in point] + [round(float(radius), 2)])
    # thin vessels fade in and out along their course, as HRF's capillary-sized vessels do
    thin_pixels = (width_map > 0) & (width_map < 0.5 * main_width)
    flicker = np.clip(THIN_FLICKER[0] + THIN_FLICKER[1] * smooth_noise(rng, shape, sigma=4.0 * step), 0.1, 1.0)
    visibility = np.where(thin_pixels, visibility * flicker, visibility).astype(np.float32)
    profile = np.clip(1.0 - vessel_field**2, 0.0, 1.0)  # soft vessel cross-section
    vessel_darkening = contrast * visibility * profile

    # --- the fundus: orange-red background, illumination, optic disc, macula, noise
    illumination = 0.8 + 0.12 * smooth_noise(rng, shape, sigma=size / 6)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1)
    radius = np.linalg.norm(grid - centre, axis=-1) / (0.46 * size)
    illumination *= 1.0 - 0.35 * np.clip(radius, 0, 1) ** 3
    base = np.array([0.78, 0.36, 0.16]) + rng.uniform(-0.04, 0.04, 3)
    image = base * illumination[..., None]
    image += 0.03 * smooth_noise(rng, shape, sigma=3.0)[..., None]
    disc_glow = np.exp(-(np.linalg.norm(grid - disc, axis=-1) / (0.05 * size)) ** 2)
    image += disc_glow[..., None] * np.array([0.2, 0.3, 0.15])
    macula = centre + np.array([0, -side * 0.05 * size])
    image *= 1 - 0.15 * np.exp(-(np.linalg.norm(grid - macula, axis=-1) / (0.08 * size)) ** 2)[..., None]
    image *= 1 - vessel_darkening[..., None] * np.array([0.7, 1.0, 0.8])
    image += 0.015 * rng.standard_normal(image.shape)
    image = ndimage.gaussian_filter(image, sigma=(0.5, 0.5, 0))
    image[~fov] = 0.02 * rng.random((int((~fov).sum()), 3))

    label_u8 = label.astype(np.uint8)
    metadata = {
        "kind": "retina",
        "seed": int(seed),
        "n_hard": n_faint,
        "n_faint": n_faint,
        "hard_places": hard_places,
        "n_segments": len(segments),
        "label_components": int(label_components(label, connectivity=8)[1]),
    }
    image_u8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return SyntheticSample(image=image_u8, label=label_u8, spacing=(1.0, 1.0), metadata=metadata, mask=fov.astype(np.uint8))
