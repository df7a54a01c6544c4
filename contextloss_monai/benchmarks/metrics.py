"""Benchmark: the topology metrics with the paper's protocol, against a straightforward SciPy /
scikit-image implementation of the same numbers, in one run.

(a) Roads-sized 2D image, 1500², Betti errors and e0-Gt on 375² tiles, clDice and AGS on the whole image.
(b) CLD-sized volume, 1024×1024×600 (``--cld-depth`` to shrink it), thin curved sheets: clDice, AGS and
    e0-Gt on 1024²×64 tiles, Betti errors on full-size 2D slices along z.

Ours runs twice per case with a fresh skeleton cache folder: "cold" (the first method evaluated on a
dataset: label and prediction skeletons computed) and "warm" (a second method's prediction on the same
labels: the label skeletons come from the disk cache). Skeletons are computed in ``--workers`` processes
(default: the available cores). Prints wall time and peak resident memory, the speed-up of the warm run
over the straightforward version, and whether every number is identical. Usage:

    contextloss bench-metrics [--cld-depth 600] [--workers N] [--markdown]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np
import torch
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.morphology import skeletonize as sk_skeletonize

from contextloss_monai.benchmarks.table import format_table
from contextloss_monai.metrics import compute_ags, compute_betti_error, compute_cldice, compute_e0_gt
from contextloss_monai.topology import tile_slices


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---------------------------------------------------------------------------------------------- data
def roads_pair(size: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A road-like network of straight lines (widths 3-9 px) and a prediction with gaps and false blobs."""
    rng = np.random.default_rng(seed)
    label = np.zeros((size, size), bool)
    for _ in range(30):
        start, end = rng.uniform(0, size, (2, 2))
        t = np.linspace(0, 1, 2 * size)[:, None]
        points = np.clip(np.round((1 - t) * start + t * end).astype(int), 0, size - 1)
        line = np.zeros_like(label)
        line[points[:, 0], points[:, 1]] = True
        label |= ndimage.binary_dilation(line, iterations=int(rng.integers(1, 5)))
    pred = label.copy()
    fg = np.argwhere(label)
    for y, x in fg[rng.choice(len(fg), 60, replace=False)]:
        pred[max(y - 6, 0) : y + 6, max(x - 6, 0) : x + 6] = False
    for y, x in rng.integers(0, size, (80, 2)):
        pred[y : y + rng.integers(2, 15), x : x + rng.integers(2, 15)] = True
    return pred, label


def sheets_pair(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Thin curved sheets (3 voxels thick) that cross and branch, and a prediction with holes and blobs."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    label = np.zeros(shape, bool)
    xx, yy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    for _ in range(max(2, nz // 60)):  # near-horizontal sheets z = f(x, y)
        freq, phase = rng.uniform(1, 3, 2) * 2 * np.pi / np.array([nx, ny]), rng.uniform(0, 2 * np.pi, 2)
        height = rng.uniform(0.1, 0.9) * nz + rng.uniform(5, 20) * np.sin(freq[0] * xx + phase[0]) * np.cos(
            freq[1] * yy + phase[1]
        )
        base = np.round(height).astype(int)
        for dz in (-1, 0, 1):
            z = base + dz
            ok = (z >= 0) & (z < nz)
            label[xx[ok], yy[ok], z[ok]] = True
    zz = np.arange(nz)
    for _ in range(4):  # oblique sheets x = g(y, z) that meet the others
        y_grid, z_grid = np.meshgrid(np.arange(ny), zz, indexing="ij")
        x0 = rng.uniform(0.1, 0.9) * nx
        slope = rng.uniform(-0.5, 0.5)
        base = np.round(x0 + slope * z_grid + 10 * np.sin(y_grid / rng.uniform(40, 120))).astype(int)
        for dx in (-1, 0, 1):
            x = base + dx
            ok = (x >= 0) & (x < nx)
            label[x[ok], y_grid[ok], z_grid[ok]] = True
    pred = label.copy()
    fg = np.argwhere(label[:, :, :: max(nz // 60, 1)])
    for x, y, z in fg[rng.choice(len(fg), 400, replace=False)]:
        z *= max(nz // 60, 1)
        pred[max(x - 5, 0) : x + 5, max(y - 5, 0) : y + 5, max(z - 3, 0) : z + 3] = False
    for x, y, z in zip(rng.integers(0, nx, 300), rng.integers(0, ny, 300), rng.integers(0, nz, 300)):
        pred[x : x + 4, y : y + 4, z : z + 3] = True
    return pred, label


# ---------------------------------------------------------------------- straightforward implementation
def naive_betti_2d(mask: np.ndarray) -> tuple[int, int]:
    holes = sk_label(~np.pad(mask, 1), connectivity=1).max() - 1
    return int(sk_label(mask, connectivity=2).max()), int(holes)


def naive_metrics(pred: np.ndarray, label: np.ndarray, betti_tile, e0_tile, skel_tile, slice_axis) -> dict:
    """The same numbers with scikit-image labelling, per tile and per slice, skeletons per metric."""
    conn = pred.ndim
    pairs = [(pred, label)] if slice_axis is None else list(zip(np.moveaxis(pred, slice_axis, 0), np.moveaxis(label, slice_axis, 0)))
    errors = []
    for p, y in pairs:
        for tile in tile_slices(p.shape, betti_tile):
            bp, by = naive_betti_2d(p[tile]), naive_betti_2d(y[tile])
            errors.append([abs(bp[0] - by[0]), abs(bp[1] - by[1])])
    errors = np.mean(errors, axis=0)
    e0_gt = np.mean(
        [
            abs(sk_label(pred[t] & label[t], connectivity=conn).max() - sk_label(label[t], connectivity=conn).max())
            for t in tile_slices(label.shape, e0_tile)
        ]
    )
    cldice, ags = [], []
    for t in tile_slices(label.shape, skel_tile):
        p, y = pred[t], label[t]
        if p.any() or y.any():
            if p.any() and y.any():
                sp, sy = sk_skeletonize(p), sk_skeletonize(y)
                tprec, tsens = (sp & y).sum() / sp.sum(), (sy & p).sum() / sy.sum()
                cldice.append(0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens))
            else:
                cldice.append(0.0)
        sy = sk_skeletonize(y)  # AGS computes its own skeleton
        if sy.any():
            ags.append(100.0 * (sy & p).sum() / sy.sum())
    return {"e0": errors[0], "e1": errors[1], "e": errors[0] + errors[1], "e0_gt": e0_gt,
            "cldice": np.mean(cldice), "ags": np.mean(ags)}


def our_metrics(pred: np.ndarray, label: np.ndarray, betti_tile, e0_tile, skel_tile, slice_axis, workers=None, cache_dir=None) -> dict:
    p, y = torch.from_numpy(pred)[None, None], torch.from_numpy(label)[None, None]
    betti = compute_betti_error(p, y, patch_size=betti_tile, slice_axis=slice_axis)[0, 0]
    skeleton_options = dict(patch_size=skel_tile, num_workers=workers, cache_dir=cache_dir)
    return {
        "e0": betti[0].item(),
        "e1": betti[1].item(),
        "e": betti[-1].item(),
        "e0_gt": compute_e0_gt(p, y, patch_size=e0_tile).item(),
        "cldice": compute_cldice(p, y, **skeleton_options).item(),
        "ags": compute_ags(p, y, **skeleton_options).item(),
    }


def other_method(pred: np.ndarray, label: np.ndarray, seed: int = 1) -> np.ndarray:
    """A second method's prediction on the same labels: the first one with other holes and blobs."""
    rng = np.random.default_rng(seed)
    other = pred.copy()
    step = tuple(max(n // 16, 1) for n in label.shape)
    fg = np.argwhere(label[tuple(slice(None, None, s) for s in step)]) * np.array(step)
    for centre in fg[rng.choice(len(fg), min(200, len(fg)), replace=False)]:
        other[tuple(slice(max(c - 3, 0), c + 3) for c in centre)] = label[tuple(slice(max(c - 3, 0), c + 3) for c in centre)]
    return other


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss bench-metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--cld-depth", type=int, default=600, help="depth of the CLD-sized volume (600 in the paper)")
    parser.add_argument("--cld-size", type=int, default=1024, help="in-plane size of the CLD-sized volume")
    parser.add_argument("--workers", type=int, default=None, help="processes for the skeletons (default: the available cores)")
    parser.add_argument("--check-warm", action="store_true", help="also compare the warm run with the straightforward version (slower)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    cases = {
        "Roads 1500² (375² tiles)": (roads_pair(), 375, 375, None, None),
        f"CLD {args.cld_size}²×{args.cld_depth} (1024²×64 tiles, Betti per z-slice)": (
            sheets_pair((args.cld_size, args.cld_size, args.cld_depth)),
            None,
            (args.cld_size, args.cld_size, min(64, args.cld_depth)),
            (args.cld_size, args.cld_size, min(64, args.cld_depth)),
            2,
        ),
    }
    rows = []
    for name, ((pred, label), betti_tile, e0_tile, skel_tile, slice_axis) in cases.items():
        print(f"{name}: {label.sum()} label voxels", flush=True)
        second = other_method(pred, label)
        with tempfile.TemporaryDirectory() as cache_dir:
            start = time.perf_counter()
            ours = our_metrics(pred, label, betti_tile, e0_tile, skel_tile, slice_axis, args.workers, cache_dir)
            t_cold, rss_cold = time.perf_counter() - start, peak_rss_gb()
            print(f"  contextloss_monai, cold cache: {t_cold:.1f} s  {ours}", flush=True)
            from contextloss_monai.topology import skeleton

            skeleton._EXACT_CACHE.clear()  # as a new evaluation process: only the disk cache carries over
            start = time.perf_counter()
            ours_warm = our_metrics(second, label, betti_tile, e0_tile, skel_tile, slice_axis, args.workers, cache_dir)
            t_warm, rss_warm = time.perf_counter() - start, peak_rss_gb()
            print(f"  contextloss_monai, warm cache (second method): {t_warm:.1f} s  {ours_warm}", flush=True)
        start = time.perf_counter()
        naive = naive_metrics(pred, label, betti_tile, e0_tile, skel_tile, slice_axis)
        t_naive, rss_naive = time.perf_counter() - start, peak_rss_gb()
        print(f"  straightforward:   {t_naive:.1f} s  {naive}", flush=True)
        naive_warm = naive_metrics(second, label, betti_tile, e0_tile, skel_tile, slice_axis) if args.check_warm else None
        identical = all(np.isclose(ours[k], naive[k], rtol=1e-6, atol=1e-9) for k in ours)
        if naive_warm is not None:
            identical = identical and all(np.isclose(ours_warm[k], naive_warm[k], rtol=1e-6, atol=1e-9) for k in ours)
        rows.append((name, t_cold, t_warm, max(rss_cold, rss_warm), t_naive, rss_naive, t_naive / t_warm, identical))

    header = ("case", "ours cold s", "ours warm s", "ours peak GB", "straightforward s", "process peak GB", "speed-up (warm)", "identical")
    cells = [(r[0], f"{r[1]:.1f}", f"{r[2]:.1f}", f"{r[3]:.2f}", f"{r[4]:.1f}", f"{r[5]:.2f}", f"{r[6]:.1f}x", "yes" if r[7] else "NO")
             for r in rows]
    print(format_table(header, cells, markdown=args.markdown))

    return 0
