"""Aerial-like road scenes, the synthetic counterpart of the Massachusetts Roads dataset."""

from __future__ import annotations

import numpy as np

from contextloss_monai.data.synthetic.common import SyntheticSample, ball_mask, capsule_field, smooth_noise
from contextloss_monai.topology.components import label_components
from contextloss_monai.checks import check_positive_int

__all__ = ["make_roads"]

_PAPER_SIZE = 1500  # Massachusetts Roads tiles are 1500 x 1500 px; road widths are quoted at that scale


def _ray_to_border(start: np.ndarray, direction: np.ndarray, size: int) -> np.ndarray:
    """The point where the ray ``start + t * direction`` (t > 0) leaves the square ``[0, size - 1]^2``."""
    t_exit = np.inf
    for axis in range(2):
        if direction[axis] > 1e-9:
            t_exit = min(t_exit, (size - 1 - start[axis]) / direction[axis])
        elif direction[axis] < -1e-9:
            t_exit = min(t_exit, -start[axis] / direction[axis])
    return start + t_exit * direction


def make_roads(size: int = 256, seed: int = 0, nodata: bool | None = None) -> SyntheticSample:
    """A 2D RGB aerial-like scene with a connected road network, occluders and optional no-data patch.

    Roads are straight (one of them may bend once), 3–12 px wide at the paper's 1500² scale (scaled
    with ``size``, at least 2 px). The first road crosses the whole image; every other road starts on
    an existing road and runs to the border, so the network is one connected component with
    junctions and loops. Ground texture, buildings (road-coloured distractors, not labelled) and
    cars make a pixel classifier's job non-trivial; tree canopies hide and shadows dim short road
    stretches — these are the ``n_hard`` places where a pixel-wise model tends to break a road.
    A white no-data patch in a corner (image white, label zero, 0.5–3 % of the image, below the
    Roads preparation limit of 4 %) appears in about a third of the images unless ``nodata`` says
    otherwise.

    Args:
        size: edge length in pixels (square image).
        seed: random seed; the same seed gives identical arrays.
        nodata: force (``True``) or forbid (``False``) the white no-data patch; ``None``: random.

    Returns:
        a :class:`SyntheticSample` with ``image`` ``(size, size, 3)`` ``uint8`` and ``label``
        ``(size, size)`` ``uint8``. ``metadata`` holds ``n_hard`` (= ``n_occlusions``),
        ``hard_places`` (one ``[row, col, radius]`` per occluder), ``n_roads``, ``nodata_fraction`` and
        ``label_components``.

    Raises:
        ValueError: when ``size`` is not a positive integer of at least 32.

    Example:
        >>> sample = make_roads(size=128, seed=1, nodata=False)
        >>> sample.image.shape, sample.label.shape, sample.metadata["label_components"]
        ((128, 128, 3), (128, 128), 1)
    """
    size = check_positive_int(size, "size")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels for a road scene, got {size}.")
    rng = np.random.default_rng(seed)
    scale = size / _PAPER_SIZE
    w_min, w_max = max(2.0, 3.0 * scale), max(3.5, 12.0 * scale)

    # --- the network: a first road across the image, then roads branching off existing ones
    starts, ends, widths = [], [], []
    centre = rng.uniform(0.3, 0.7, size=2) * (size - 1)
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    a, b = _ray_to_border(centre, direction, size), _ray_to_border(centre, -direction, size)
    starts.append(b), ends.append(a), widths.append(rng.uniform(w_min, w_max))
    n_roads = int(rng.integers(4, 8))
    for _ in range(n_roads - 1):
        k = int(rng.integers(len(starts)))
        origin = starts[k] + rng.uniform(0.15, 0.85) * (ends[k] - starts[k])
        parent = np.arctan2(*(ends[k] - starts[k])[::-1])
        angle = parent + rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 2 * np.pi / 3)
        direction = np.array([np.cos(angle), np.sin(angle)])
        width = rng.uniform(w_min, w_max)
        end = _ray_to_border(origin, direction, size)
        if rng.random() < 0.3:  # one gentle bend half way
            mid = origin + 0.5 * (end - origin)
            angle += rng.uniform(-0.35, 0.35)
            direction = np.array([np.cos(angle), np.sin(angle)])
            starts.append(origin), ends.append(mid), widths.append(width)
            origin, end = mid, _ray_to_border(mid, direction, size)
        starts.append(origin), ends.append(end), widths.append(width)
    starts, ends, radii = np.array(starts), np.array(ends), np.array(widths) / 2
    road_field = capsule_field((size, size), starts, ends, radii)
    label = road_field <= 1.0

    # --- ground, buildings, roads
    ground_colour = np.array([0.30, 0.36, 0.24]) + rng.uniform(-0.05, 0.05, size=3)
    texture = 0.07 * smooth_noise(rng, (size, size), sigma=size / 25) + 0.04 * smooth_noise(rng, (size, size), 1.5)
    image = ground_colour + texture[..., None] + 0.02 * rng.standard_normal((size, size, 3))
    road_colour = np.array([0.55, 0.54, 0.52]) + rng.uniform(-0.05, 0.05, size=3)
    building_mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(3, 9))):
        corner = rng.integers(0, size - 4, size=2)
        extent = rng.integers(max(3, size // 40), max(5, size // 12), size=2)
        box = np.zeros_like(building_mask)
        box[corner[0] : corner[0] + extent[0], corner[1] : corner[1] + extent[1]] = True
        building_mask |= box & (road_field > 2.0)
    image[building_mask] = road_colour * rng.uniform(0.85, 1.2) + 0.03 * rng.standard_normal((building_mask.sum(), 3))
    road_alpha = np.clip(1.5 - road_field, 0.0, 1.0)[..., None]  # soft road edges
    road_texture = road_colour + 0.03 * rng.standard_normal((size, size, 3))
    image = (1 - road_alpha) * image + road_alpha * road_texture
    for _ in range(int(rng.integers(2, 6))):  # cars: small bright boxes on roads, not hard places
        position = np.round(_sample_on_roads(rng, starts, ends)).astype(int)
        half = max(1, int(round(2 * size / 256)))
        window = tuple(slice(max(p - half, 0), p + half) for p in position)
        image[window] = rng.uniform(0.1, 0.95, size=3)

    # --- the hard places: tree canopies hide, shadows dim a short stretch of road
    n_occlusions = int(rng.integers(2, 5)) + size // 256
    hard_places = []
    for _ in range(n_occlusions):
        position = _sample_on_roads(rng, starts, ends)
        radius = rng.uniform(1.2, 2.2) * w_max
        hard_places.append([round(float(c), 2) for c in position] + [round(float(radius), 2)])
        if rng.random() < 0.6:
            canopy = ball_mask((size, size), position, radius)
            leaves = np.array([0.12, 0.22, 0.10]) + 0.05 * smooth_noise(rng, (size, size), 1.0)[..., None]
            image[canopy] = leaves[canopy]
        else:
            shadow = ball_mask((size, size), position, (radius, radius * rng.uniform(1.5, 3.0)))
            image[shadow] *= rng.uniform(0.2, 0.3)

    # --- white no-data patch in a corner (the Roads preparation rule drops images with > 4 %)
    if nodata is None:
        nodata = bool(rng.random() < 1 / 3)
    nodata_fraction = 0.0
    if nodata:
        fraction = rng.uniform(0.005, 0.03)
        height = int(round(size * np.sqrt(fraction) * rng.uniform(0.7, 1.3)))
        width = int(round(fraction * size * size / max(height, 1)))
        rows = slice(0, height) if rng.random() < 0.5 else slice(size - height, size)
        cols = slice(0, width) if rng.random() < 0.5 else slice(size - width, size)
        image[rows, cols] = 1.0
        label[rows, cols] = False
        nodata_fraction = float(height * width) / size**2

    image_u8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    if nodata_fraction == 0.0:
        image_u8[(image_u8 == 255).all(-1)] = 254  # only the no-data patch is pure white
    label_u8 = label.astype(np.uint8)
    metadata = {
        "kind": "roads",
        "seed": int(seed),
        "n_hard": n_occlusions,
        "n_occlusions": n_occlusions,
        "hard_places": hard_places,
        "n_roads": len(starts),
        "nodata_fraction": nodata_fraction,
        "label_components": int(label_components(label, connectivity=8)[1]),
    }
    return SyntheticSample(image=image_u8, label=label_u8, spacing=(1.0, 1.0), metadata=metadata)


def _sample_on_roads(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A point on a road centre line, chosen with probability proportional to road length."""
    lengths = np.linalg.norm(ends - starts, axis=1)
    k = int(rng.choice(len(starts), p=lengths / lengths.sum()))
    return starts[k] + rng.uniform(0.05, 0.95) * (ends[k] - starts[k])
