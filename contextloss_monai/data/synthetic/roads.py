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


def _street_grid(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre lines of a street grid: ``(starts, ends)``, each ``(K, 2)``.

    Two families of straight streets, roughly perpendicular, rotated by a random angle. The avenues (first
    family) cross the whole image; each cross street either crosses it too or runs only between two
    neighbouring avenues (a block-long street), so the grid is one connected network of blocks and loops.
    """
    angle = rng.uniform(0, np.pi)
    along = np.array([np.cos(angle), np.sin(angle)])
    across = np.array([-along[1], along[0]])
    centre = np.full(2, (size - 1) / 2)
    half_span = size * 0.45  # streets within this distance of the centre cross the image whatever the angle

    def family(count: int, direction: np.ndarray, normal: np.ndarray, jitter: float) -> list[tuple[np.ndarray, np.ndarray]]:
        spacing = 2 * half_span / count
        offsets = (np.arange(count) - (count - 1) / 2) * spacing + rng.uniform(-0.25, 0.25, size=count) * spacing
        lines = []
        for offset in offsets:
            tilt = rng.uniform(-jitter, jitter)
            d = np.cos(tilt) * direction + np.sin(tilt) * normal
            point = np.clip(centre + offset * normal, 1, size - 2)
            lines.append((_ray_to_border(point, -d, size), _ray_to_border(point, d, size)))
        return lines

    density = size / 256  # streets per 256 px: blocks of 25-40 px, so a quarter of the image holds several loops
    avenues = family(max(2, int(round(rng.integers(6, 9) * density))), along, across, 0.12)
    starts, ends = [a for a, _ in avenues], [b for _, b in avenues]
    for a, b in family(max(2, int(round(rng.integers(6, 9) * density))), across, along, 0.12):
        hits = sorted(t for t in (_intersection(a, b, p, q) for p, q in avenues) if t is not None)
        if len(hits) >= 2 and rng.random() < 0.45:  # a block-long street between two neighbouring avenues
            k = int(rng.integers(len(hits) - 1))
            a, b = a + hits[k] * (b - a), a + hits[k + 1] * (b - a)
        starts.append(a), ends.append(b)
    return _largest_network(np.array(starts), np.array(ends))


def _largest_network(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The segments of the largest set that is connected through crossings (a street that, tilted, leaves
    the image before it meets the others is dropped), so the label is one component."""
    n = len(starts)
    group = list(range(n))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if _intersection(starts[i], ends[i], starts[j], ends[j]) is not None:
                group[root(i)] = root(j)
    roots = np.array([root(i) for i in range(n)])
    lengths = np.linalg.norm(ends - starts, axis=1)
    best = max(set(roots.tolist()), key=lambda r: lengths[roots == r].sum())
    return starts[roots == best], ends[roots == best]


def _intersection(a: np.ndarray, b: np.ndarray, p: np.ndarray, q: np.ndarray) -> float | None:
    """The parameter ``t`` in [0, 1] at which segment ``a -> b`` crosses segment ``p -> q`` (``None``: no crossing)."""
    d, e = b - a, q - p
    denominator = d[0] * e[1] - d[1] * e[0]
    if abs(denominator) < 1e-9:
        return None
    t = ((p[0] - a[0]) * e[1] - (p[1] - a[1]) * e[0]) / denominator
    u = ((p[0] - a[0]) * d[1] - (p[1] - a[1]) * d[0]) / denominator
    return float(t) if 0 <= t <= 1 and 0 <= u <= 1 else None


def make_roads(size: int = 256, seed: int = 0, nodata: bool | None = None) -> SyntheticSample:
    """A 2D RGB aerial-like scene of a street grid, hard in the way Massachusetts Roads is hard.

    The road network is a street grid (:func:`_street_grid`): avenues across the image and cross streets,
    some of them one block long, so the label is one connected component with blocks and loops (β1 >= 1
    at the default size). Roads are 3–12 px wide at the paper's 1500² scale (scaled with ``size``, at
    least 2 px); their colour varies from road to road and some are dirt-coloured, close to the ground.

    What makes it hard for a pixel-wise model, as on the real tiles:

    - **occlusions** (the ``n_hard`` places, on the roads): tree canopies hide a stretch of road completely
      and dark shadows hide most of its contrast; the label runs on underneath. Trees and shadows also stand
      on open ground, so a canopy is no clue of a road. The model breaks a road there, which in a grid is a
      broken loop (a β1 error) more often than a split network (β0).
    - **road-like distractors**, not labelled: roofs in road colour and short paved strips (driveways,
      parking lanes) that end in the open.

    A white no-data patch in a corner (image white, label zero, 0.5–3 % of the image, below the Roads
    preparation limit of 4 %) appears in about a third of the images unless ``nodata`` says otherwise.

    Args:
        size: edge length in pixels (square image).
        seed: random seed; the same seed gives identical arrays.
        nodata: force (``True``) or forbid (``False``) the white no-data patch; ``None``: random.

    Returns:
        a :class:`SyntheticSample` with ``image`` ``(size, size, 3)`` ``uint8`` and ``label``
        ``(size, size)`` ``uint8``. ``metadata`` holds ``n_hard`` (= ``n_occlusions``), ``hard_places``
        (one ``[row, col, radius]`` per occlusion on a road), ``n_roads``, ``occluded_fraction`` (the share of
        road pixels hidden by a canopy or a shadow), ``nodata_fraction`` and ``label_components``.

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

    # --- the network: a street grid of blocks and loops
    starts, ends = _street_grid(rng, size)
    radii = rng.uniform(w_min, w_max, size=len(starts)) / 2
    road_field = capsule_field((size, size), starts, ends, radii)
    label = road_field <= 1.0

    # --- ground, distractors, roads
    ground_colour = np.array([0.30, 0.36, 0.24]) + rng.uniform(-0.05, 0.05, size=3)
    texture = 0.07 * smooth_noise(rng, (size, size), sigma=size / 25) + 0.04 * smooth_noise(rng, (size, size), 1.5)
    image = ground_colour + texture[..., None] + 0.02 * rng.standard_normal((size, size, 3))
    road_colour = np.array([0.55, 0.54, 0.52]) + rng.uniform(-0.05, 0.05, size=3)
    dirt_colour = ground_colour + np.array([0.12, 0.08, 0.06])
    building_mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(4, 10))):  # roofs in road colour
        corner = rng.integers(0, size - 4, size=2)
        extent = rng.integers(max(3, size // 40), max(5, size // 12), size=2)
        box = np.zeros_like(building_mask)
        box[corner[0] : corner[0] + extent[0], corner[1] : corner[1] + extent[1]] = True
        building_mask |= box & (road_field > 2.0)
    image[building_mask] = road_colour * rng.uniform(0.85, 1.2) + 0.03 * rng.standard_normal((building_mask.sum(), 3))
    strip_starts = np.array([_sample_on_roads(rng, starts, ends)[0] for _ in range(int(rng.integers(2, 5)))])
    strip_angles = rng.uniform(0, 2 * np.pi, size=len(strip_starts))
    strip_length = rng.uniform(0.06, 0.14, size=len(strip_starts)) * size
    strip_ends = strip_starts + strip_length[:, None] * np.stack([np.cos(strip_angles), np.sin(strip_angles)], -1)
    strip_starts = strip_starts + (3 * w_max) * (strip_ends - strip_starts) / strip_length[:, None]  # a gap to the road
    strip_field = capsule_field((size, size), strip_starts, strip_ends, np.full(len(strip_starts), w_min / 2))
    strips = (strip_field <= 1.0) & (road_field > 2.0)
    image[strips] = road_colour * rng.uniform(0.9, 1.1)  # driveways / parking lanes: paved, not labelled
    road_alpha = np.clip(1.5 - road_field, 0.0, 1.0)[..., None]  # soft road edges
    # paved roads, dirt roads, and faint tracks (10-25 % of a paved road's contrast)
    surface = rng.choice(3, size=len(starts), p=[0.55, 0.3, 0.15])
    opacity = np.where(surface == 2, rng.uniform(0.1, 0.25, size=len(starts)), 1.0)
    nearest_road = _nearest_segment(road_field.shape, starts, ends, radii)
    base = np.where((surface[nearest_road] == 1)[..., None], dirt_colour, road_colour)
    road_texture = base + 0.03 * rng.standard_normal((size, size, 3))
    road_alpha = road_alpha * opacity[nearest_road][..., None]
    image = (1 - road_alpha) * image + road_alpha * road_texture
    for _ in range(int(rng.integers(2, 6))):  # cars: small bright boxes on roads, not hard places
        position = np.round(_sample_on_roads(rng, starts, ends)[0]).astype(int)
        half = max(1, int(round(2 * size / 256)))
        window = tuple(slice(max(p - half, 0), p + half) for p in position)
        image[window] = rng.uniform(0.1, 0.95, size=3)

    # --- occluders: tree canopies hide, shadows darken; on the roads (the hard places) and on open ground
    road_length = float(np.linalg.norm(ends - starts, axis=1).sum())
    n_occlusions = max(2, int(round(road_length / size * rng.uniform(1.6, 2.4))))
    n_ground = int(rng.integers(3, 8)) * max(1, size // 256)
    occluded = np.zeros((size, size), dtype=bool)
    hard_places = []
    for k in range(n_occlusions + n_ground):
        on_road = k < n_occlusions
        if on_road:
            position, direction = _sample_on_roads(rng, starts, ends)
        else:  # trees and tree rows on open ground too: a canopy is no clue of a road
            position, angle = rng.uniform(0, size - 1, size=2), rng.uniform(0, np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
        radius = rng.uniform(1.5, 3.0) * w_max
        if rng.random() < 0.6:  # a tree, or a row of trees (along the road: hiding a long stretch of it)
            row = int(rng.integers(3, 8)) if rng.random() < 0.6 else 1
            region = np.zeros((size, size), dtype=bool)
            for step in range(row):
                centre = position + (step - (row - 1) / 2) * 1.3 * radius * direction
                region |= ball_mask((size, size), centre, radius * rng.uniform(0.8, 1.1))
            leaves = np.array([0.12, 0.22, 0.10]) + 0.05 * smooth_noise(rng, (size, size), 1.0)[..., None]
            image[region] = leaves[region]
        else:
            region = ball_mask((size, size), position, (radius, radius * rng.uniform(1.5, 3.0)))
            image[region] *= rng.uniform(0.15, 0.25)
        occluded |= region
        if on_road:
            hard_places.append([round(float(c), 2) for c in position] + [round(float(radius), 2)])

    image += 0.03 * rng.standard_normal((size, size, 3))  # sensor noise, also over the shadows' faint contrast

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
        "occluded_fraction": round(float((occluded & label).sum() / max(label.sum(), 1)), 4),
        "nodata_fraction": nodata_fraction,
        "label_components": int(label_components(label, connectivity=8)[1]),
    }
    return SyntheticSample(image=image_u8, label=label_u8, spacing=(1.0, 1.0), metadata=metadata)


def _nearest_segment(shape: tuple[int, int], starts: np.ndarray, ends: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Index of the road whose normalised distance field is smallest at each pixel, ``(H, W)`` ``int``."""
    fields = np.stack([capsule_field(shape, starts[k : k + 1], ends[k : k + 1], radii[k : k + 1]) for k in range(len(starts))])
    return fields.argmin(0)


def _sample_on_roads(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A point on a road centre line, chosen with probability proportional to road length, and the unit
    direction of that road."""
    lengths = np.linalg.norm(ends - starts, axis=1)
    k = int(rng.choice(len(starts), p=lengths / lengths.sum()))
    return starts[k] + rng.uniform(0.05, 0.95) * (ends[k] - starts[k]), (ends[k] - starts[k]) / max(lengths[k], 1e-9)
