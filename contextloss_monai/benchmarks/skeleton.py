"""Benchmark: the binary soft skeleton on words of 64 packed pixels against the bool map, in one run.

The maps are those ContextLoss skeletonises at each step: the foreground of the target and of the arg-max
prediction of the loss benchmark's inputs (``contextloss bench-losses``), label and prediction in one batch
``(2B, 1, *spatial)``; at the loss benchmark's sizes (2D ``2x2x512x512``, 3D ``2x2x96x96x48``: maps
``4x1x512x512`` and ``4x1x96x96x48``) and at two small ones (``2x2x128x128``, ``2x2x32x32x32``), on either side of
``PACKED_MIN_PIXELS`` (a small 2D batch keeps the bool map). Each map is skeletonised both ways in turn,
``--repeats`` times after a warm-up; times are medians; the two skeletons are compared bit for bit. On the CPU the
iteration stops when erosion leaves the map unchanged; on CUDA it runs all ``--iters`` steps, replayed as a CUDA
graph (``--eager``: kernel by kernel).

Usage:
    contextloss bench-skeleton [--repeats 20] [--device cpu] [--iters 50] [--eager] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from contextloss_monai.benchmarks.losses import make_inputs
from contextloss_monai.benchmarks.table import format_table
from contextloss_monai.losses.context_loss import binarize_prediction
from contextloss_monai.topology import skeleton as skeleton_module
from contextloss_monai.topology.packed import AVAILABLE

#: name -> the loss benchmark's input shape ``(B, 2, *spatial)`` whose maps are skeletonised
SHAPES = {
    "2d": (2, 2, 512, 512),
    "3d": (2, 2, 96, 96, 48),
    "2d-small": (2, 2, 128, 128),
    "3d-small": (2, 2, 32, 32, 32),
}
PATHS = {"bool": {2: 1 << 62, 3: 1 << 62}, "packed": {2: 0, 3: 0}}  # PACKED_MIN_PIXELS forcing each path


def skeleton_maps(shape: tuple[int, ...]) -> torch.Tensor:
    """Target and arg-max prediction foreground of :func:`make_inputs`, one bool batch ``(2B, 1, *spatial)``."""
    logits, target = make_inputs(shape)
    prediction = binarize_prediction(logits, softmax=True)[:, 1:]
    return torch.cat([target.bool(), prediction])


def _skeleton(maps: torch.Tensor, iters: int, path: str) -> torch.Tensor:
    skeleton_module.PACKED_MIN_PIXELS = PATHS[path]
    skel = skeleton_module.binary_soft_skeleton(maps, iters)
    if skel.is_cuda:
        torch.cuda.synchronize()
    return skel


def time_paths(maps: torch.Tensor, iters: int, repeats: int) -> tuple[dict[str, float], bool]:
    """Median seconds per call of each path (alternating), and whether their skeletons are identical."""
    default = skeleton_module.PACKED_MIN_PIXELS
    try:
        skeletons = {path: _skeleton(maps, iters, path) for path in PATHS}  # warm-up (and CUDA graph capture)
        identical = torch.equal(skeletons["bool"], skeletons["packed"])
        times: dict[str, list[float]] = {path: [] for path in PATHS}
        for _ in range(repeats):
            for path in PATHS:
                start = time.perf_counter()
                _skeleton(maps, iters, path)
                times[path].append(time.perf_counter() - start)
    finally:
        skeleton_module.PACKED_MIN_PIXELS = default
    return {path: statistics.median(values) for path, values in times.items()}, identical


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss bench-skeleton", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int, default=50, help="soft-skeleton iterations (the paper's 50)")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--eager", action="store_true", help="on CUDA, run kernel by kernel (no CUDA graph)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    if args.iters < 1:
        parser.error("--iters must be a positive integer")
    if not AVAILABLE:
        parser.error("packed words need a little-endian machine; this one is not (the skeleton uses the bool map)")
    skeleton_module.USE_CUDA_GRAPHS = not args.eager

    header = ("maps", "pixels", "default", "bool ms", "packed ms", "packed / bool", "identical")
    rows = []
    for name in args.shapes:
        maps = skeleton_maps(SHAPES[name]).to(args.device)
        times, identical = time_paths(maps, args.iters, args.repeats)
        default = "packed" if skeleton_module.uses_packed_words(maps) else "bool"
        rows.append(("x".join(map(str, maps.shape)), maps.numel(), default, times["bool"] * 1000,
                     times["packed"] * 1000, times["packed"] / times["bool"], "yes" if identical else "NO"))
        print(f"  {name}: bool {rows[-1][3]:.2f} ms, packed {rows[-1][4]:.2f} ms", flush=True)
    cells = [(r[0], r[1], r[2], f"{r[3]:.2f}", f"{r[4]:.2f}", f"{r[5]:.2f}", r[6]) for r in rows]
    print(format_table(header, cells, markdown=args.markdown))
    return 0 if all(r[6] == "yes" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
