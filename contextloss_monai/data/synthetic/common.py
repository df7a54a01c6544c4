"""Building blocks of the synthetic generators: the sample container, tube rasterisation and textures.

Every generator draws its structures as unions of *capsules* (line segments with a radius that may
taper along the segment). :func:`capsule_field` rasterises them into a normalised distance map
``d / r`` (``<= 1`` inside a structure), which gives both the binary label and a smooth intensity
profile for the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from contextloss_monai.checks import check_positive_int

__all__ = ["SyntheticSample", "capsule_field", "smooth_noise", "ball_mask", "point_on_polyline", "volume_shape"]


@dataclass
class SyntheticSample:
    """One generated image with its label.

    Attributes:
        image: the image, channel-last: ``(H, W, C)`` for 2D kinds, ``(X, Y, Z, C)`` for 3D kinds.
            ``uint8`` for the RGB kinds, ``float32`` for the 3D kinds.
        label: the binary label, ``uint8`` with values in ``{0, 1}``, spatial shape of ``image``.
        spacing: physical size of a pixel / voxel in millimetres, one entry per spatial axis.
        metadata: what the generator knows about the sample, at least ``kind``, ``seed``, ``n_hard``
            (the number of places made deliberately hard to segment without breaking the structure:
            occlusions, faint stretches, signal dropouts), ``hard_places`` (their centres and radii, one
            ``[*centre, radius]`` each, in pixel coordinates) and ``label_components`` (β0 of ``label``).
        mask: optional field-of-view mask (``uint8``, spatial shape of ``image``), e.g. the fundus disc.
    """

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None


def capsule_field(
    shape: Sequence[int],
    starts: np.ndarray,
    ends: np.ndarray,
    radii_start: np.ndarray,
    radii_end: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Normalised distance ``min_k d_k(x) / r_k(x)`` to a set of (tapered) capsules.

    Args:
        shape: spatial shape of the output, 2 or 3 axes.
        starts: segment start points, shape ``(K, D)`` in pixel coordinates.
        ends: segment end points, shape ``(K, D)``.
        radii_start: radius at each start point, shape ``(K,)``.
        radii_end: radius at each end point (linear taper), defaults to ``radii_start``.
        out: optional field to update in place (elementwise minimum).

    Returns:
        a ``float32`` array of ``shape``; values ``<= 1`` lie inside a capsule. Only a bounding box
        around each capsule is touched, so long thin structures are cheap.
    """
    shape = tuple(int(s) for s in shape)
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, len(shape))
    ends = np.asarray(ends, dtype=np.float64).reshape(-1, len(shape))
    radii_start = np.broadcast_to(np.asarray(radii_start, dtype=np.float64), (len(starts),))
    radii_end = radii_start if radii_end is None else np.broadcast_to(np.asarray(radii_end, np.float64), (len(starts),))
    if out is None:
        out = np.full(shape, np.inf, dtype=np.float32)
    for p0, p1, r0, r1 in zip(starts, ends, radii_start, radii_end):
        r_max = max(r0, r1)
        lo = np.maximum(np.floor(np.minimum(p0, p1) - 2 * r_max - 1), 0).astype(int)
        hi = np.minimum(np.ceil(np.maximum(p0, p1) + 2 * r_max + 2), shape).astype(int)
        if np.any(hi <= lo):
            continue
        grids = np.meshgrid(*[np.arange(a, b, dtype=np.float64) for a, b in zip(lo, hi)], indexing="ij")
        points = np.stack(grids, axis=-1)
        seg = p1 - p0
        length2 = float(seg @ seg)
        t = np.zeros(points.shape[:-1]) if length2 == 0 else np.clip(((points - p0) @ seg) / length2, 0.0, 1.0)
        nearest = p0 + t[..., None] * seg
        dist = np.sqrt(((points - nearest) ** 2).sum(-1))
        radius = r0 + t * (r1 - r0)
        window = tuple(slice(a, b) for a, b in zip(lo, hi))
        np.minimum(out[window], (dist / radius).astype(np.float32), out=out[window])
    return out


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to zero mean and unit standard deviation (``float32``)."""
    field_ = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32), sigma=sigma)
    std = float(field_.std())
    return ((field_ - field_.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def ball_mask(shape: Sequence[int], center: Sequence[float], radius: float | Sequence[float]) -> np.ndarray:
    """Boolean (ellipsoidal) ball of ``radius`` (scalar or per axis) around ``center``."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(shape),))
    dist2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radius))
    return dist2 <= 1.0


def point_on_polyline(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """A random point on a random segment, away from the segment ends by ``margin`` (fraction)."""
    k = int(rng.integers(len(starts)))
    t = float(rng.uniform(margin, 1.0 - margin))
    return starts[k] + t * (ends[k] - starts[k])


def volume_shape(size: int, depth: int | None, depth_fraction: float) -> tuple[int, int]:
    """``(size, depth)`` of a 3D generator's ``(size, size, depth)`` volume; ``depth`` defaults to
    ``max(16, int(depth_fraction * size))``.

    Raises:
        ValueError: when ``size`` or ``depth`` is not a positive integer or is below 16.
    """
    size = check_positive_int(size, "size")
    depth = check_positive_int(depth if depth is not None else max(16, int(depth_fraction * size)), "depth")
    if size < 16 or depth < 16:
        raise ValueError(f"size and depth must be at least 16 voxels, got size={size}, depth={depth}.")
    return size, depth
