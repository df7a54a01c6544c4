"""Two-channel volumes of branching tubular networks with loops, the synthetic counterpart of Vessap."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from contextloss_monai.data.synthetic.common import SyntheticSample, ball_mask, capsule_field, smooth_noise, volume_shape
from contextloss_monai.topology.components import label_components

__all__ = ["DROPOUT_REACH", "DROPOUT_SIGNAL", "make_vessels3d"]

#: a dropout is a ball of radius ``DROPOUT_REACH · r + 1`` voxels on a tube of radius ``r``, so about one
#: diameter of the tube loses its signal. Set on 2026-11-28 from the pretrained model
#: (``contextloss calibrate``): with two diameters and 10 % signal a fifth of the centre line lay in
#: dropouts and the pretrained AGS was 89.9, below the paper's Vessap row (96 ± 3); with one diameter and
#: :data:`DROPOUT_SIGNAL` a tenth does, and AGS is 97.4
DROPOUT_REACH = 1.0
#: the range the signal falls to inside a dropout (fraction of the visible tube's), drawn per dropout
DROPOUT_SIGNAL = (0.2, 0.35)


def make_vessels3d(size: int = 64, seed: int = 0, depth: int | None = None) -> SyntheticSample:
    """A 3D two-channel volume of a connected tubular network with loops, radii 1–4 voxels.

    Random nodes are joined by a minimum spanning tree (so the network is one component) plus a few
    extra short edges that close loops; every edge is a gently curved tube of constant radius in
    ``[1, 4]`` voxels. Channel 0 shows the vessel lumen, channel 1 the vessel wall (a brighter rim),
    each with its own background texture and noise, like Vessap's two stains. The ``n_hard`` places are
    signal dropouts: along some tubes the signal falls to 20–35 % in both channels over a stretch of
    about one diameter (:data:`DROPOUT_REACH`, :data:`DROPOUT_SIGNAL`).

    Args:
        size: in-plane edge length in voxels.
        seed: random seed; the same seed gives identical arrays.
        depth: number of slices, default ``size // 2`` (Vessap volumes are flat: 500² × 50).

    Returns:
        a :class:`SyntheticSample` with ``image`` ``(size, size, depth, 2)`` ``float32`` and ``label``
        ``(size, size, depth)`` ``uint8``. ``metadata`` holds ``n_hard`` (= ``n_dropouts``), ``hard_places``
        (``[x, y, z, radius]`` per dropout), ``n_edges``,
        ``n_loops`` and ``label_components``.

    Raises:
        ValueError: when ``size`` or ``depth`` is below 16.

    Example:
        >>> sample = make_vessels3d(size=32, seed=0)
        >>> sample.image.shape, sample.label.shape
        ((32, 32, 16, 2), (32, 32, 16))
    """
    size, depth = volume_shape(size, depth, depth_fraction=0.5)
    rng = np.random.default_rng(seed)
    shape = (size, size, depth)
    extent = np.array(shape, dtype=np.float64)

    # --- graph: spanning tree over random nodes plus a few loop-closing edges
    n_nodes = int(rng.integers(8, 13)) + size // 64
    nodes = rng.uniform(0.08, 0.92, size=(n_nodes, 3)) * (extent - 1)
    distances = cdist(nodes, nodes)
    tree = minimum_spanning_tree(distances).toarray() > 0
    edges = [tuple(e) for e in np.argwhere(tree)]
    candidates = [(i, j) for i in range(n_nodes) for j in range(i + 1, n_nodes) if not (tree[i, j] or tree[j, i])]
    candidates.sort(key=lambda e: distances[e])
    n_loops = min(len(candidates), int(rng.integers(2, 5)))
    edges += candidates[: 2 * n_loops : 2]  # every second shortest non-tree edge: loops, not clutter
    n_loops = len(edges) - (n_nodes - 1)

    # --- each edge: a quadratic Bezier curve of constant radius, as a chain of capsules
    starts, ends, radii = [], [], []
    for i, j in edges:
        a, b = nodes[i], nodes[j]
        control = (a + b) / 2 + rng.normal(0, 0.15 * np.linalg.norm(b - a) + 1e-6, 3)
        control = np.clip(control, 0, extent - 1)
        t = np.linspace(0, 1, 9)[:, None]
        curve = (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t**2 * b
        radius = rng.uniform(1.0, 4.0)
        starts.extend(curve[:-1])
        ends.extend(curve[1:])
        radii.extend([radius] * (len(curve) - 1))
    starts, ends, radii = np.array(starts), np.array(ends), np.array(radii)
    tube_field = capsule_field(shape, starts, ends, radii)
    label = tube_field <= 1.0

    # --- dropouts: the signal fades over a stretch of a tube
    visibility = np.ones(shape, dtype=np.float32)
    n_dropouts = int(rng.integers(2, 5)) + size // 128
    hard_places = []
    for k in rng.choice(len(starts), size=n_dropouts, replace=False):
        centre = starts[k] + rng.uniform(0.2, 0.8) * (ends[k] - starts[k])
        reach = DROPOUT_REACH * radii[k] + 1.0
        visibility[ball_mask(shape, centre, reach)] = rng.uniform(*DROPOUT_SIGNAL)
        hard_places.append([round(float(c), 2) for c in centre] + [round(float(reach), 2)])

    # --- two channels: lumen and wall signal on textured backgrounds
    lumen = np.clip(1.2 - tube_field, 0, 1)
    wall = np.exp(-(((tube_field - 0.85) / 0.25) ** 2))
    channels = []
    for signal, strength, noise in ((lumen, 0.55, 0.10), (wall, 0.45, 0.12)):
        background = 0.15 + 0.05 * smooth_noise(rng, shape, sigma=4.0)
        channel = background + strength * signal * visibility * rng.uniform(0.8, 1.2)
        channel = ndimage.gaussian_filter(channel, 0.7) + noise * rng.standard_normal(shape)
        channels.append(channel.astype(np.float32))
    image = np.stack(channels, axis=-1)

    metadata = {
        "kind": "vessels3d",
        "seed": int(seed),
        "n_hard": n_dropouts,
        "n_dropouts": n_dropouts,
        "hard_places": hard_places,
        "n_edges": len(edges),
        "n_loops": n_loops,
        "label_components": int(label_components(label, connectivity=26)[1]),
    }
    return SyntheticSample(image=image, label=label.astype(np.uint8), spacing=(1.0, 1.0, 1.0), metadata=metadata)
