"""Benchmark: forward + backward time and peak memory of ContextLoss against its baselines.

Inputs are softmax logits with 2 classes of thin curvilinear structures: 2D ``2x2x512x512`` and 3D
``2x2x96x96x48``. The logits predict the target with gaps (missed connections), false bridges and a
little noise, so the critical pixel mask is not empty, as in fine-tuning. Times are the median of
``--repeats`` runs after a warm-up, all in this process; peak memory is the extra resident memory of
one forward + backward: the sampled growth of the resident size in a spawned child (CPU) or
``torch.cuda.max_memory_allocated``.
Ratios are to ``DiceCELoss`` and to MONAI's ``SoftDiceclDiceLoss(iter_=50)`` measured in the same run. Skeleton
Recall (Dice & CE + its recall term) twice: with the tube its data pipeline makes (computed before the timed
runs) and computing the tube from the target at every step (``on_the_fly``, as the nnU-Net trainer does). cbDice
(Dice & CE + cbDice, its authors' weights) twice: with its authors' 10 soft-skeleton iterations (what the bundles and
the nnU-Net trainer use) and with the paper's 50 (what clDice and ContextLoss use).

Usage:
    contextloss bench-losses [--repeats 5] [--device cpu] [--shapes 2d 3d] [--losses NAME ...] [--markdown]

``--losses`` times only the named losses (``DiceCELoss``, the ratios' base, always runs; the ``x clDice`` column
needs ``"SoftDiceclDiceLoss(iter_=50)"``, the slowest row, among them).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import threading
import time

import numpy as np
import torch
from monai.losses import DiceCELoss, SoftDiceclDiceLoss
from scipy import ndimage

from contextloss_monai.losses import CompoundClDiceLoss, ContextLoss, DiceCECBDiceLoss, DiceCESkeletonRecallLoss
from contextloss_monai.benchmarks.table import format_table

SHAPES = {"2d": (2, 2, 512, 512), "3d": (2, 2, 96, 96, 48)}


def curvilinear_target(spatial: tuple[int, ...], n_curves: int, rng: np.random.Generator) -> np.ndarray:
    """Random smooth curves (2D) or tubes (3D) about 3 px wide, as a bool array of shape ``spatial``."""
    out = np.zeros(spatial, bool)
    for _ in range(n_curves):
        start, end = rng.uniform(0, 1, (2, len(spatial))) * np.array(spatial)
        bend = rng.normal(0, 0.15, len(spatial)) * np.array(spatial)
        t = np.linspace(0, 1, 4 * max(spatial))[:, None]
        points = (1 - t) * start + t * end + 4 * t * (1 - t) * bend
        idx = np.clip(np.round(points).astype(int), 0, np.array(spatial) - 1)
        out[tuple(idx.T)] = True
    return ndimage.binary_dilation(out, iterations=1)


def flawed_prediction(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The target with gaps cut, false bridges added and a few speckles."""
    pred = target.copy()
    fg = np.argwhere(target)
    for centre in fg[rng.choice(len(fg), 8, replace=False)]:  # gaps
        pred[tuple(slice(max(c - 3, 0), c + 3) for c in centre)] = False
    for centre in fg[rng.choice(len(fg), 4, replace=False)]:  # false bridges / blobs next to the structure
        pred[tuple(slice(max(c - 1, 0), c + 6) for c in centre)] = True
    pred |= rng.random(target.shape) > 0.9995
    return pred


def make_inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(B, 2, *spatial)`` and a class-index target ``(B, 1, *spatial)``."""
    rng = np.random.default_rng(seed)
    batch, spatial = shape[0], shape[2:]
    n_curves = 12 if len(spatial) == 2 else 8
    targets = np.stack([curvilinear_target(spatial, n_curves, rng) for _ in range(batch)])[:, None]
    preds = np.stack([flawed_prediction(t[0], rng) for t in targets])[:, None]
    fg = (2.0 * preds - 1.0) * 3.0 + rng.normal(0, 1.0, preds.shape)
    logits = torch.from_numpy(np.concatenate([-fg, fg], axis=1).astype(np.float32))
    return logits, torch.from_numpy(targets.astype(np.float32))


class PipelineTube(torch.nn.Module):
    """Skeleton Recall as a bundle trains it: the tube made by the data pipeline, here computed once per target (at
    the warm-up, outside the timed runs) and passed to the loss, whose step then costs a few sums."""

    def __init__(self, loss: DiceCESkeletonRecallLoss) -> None:
        super().__init__()
        self.loss = loss
        self._tubes: dict[tuple, torch.Tensor] = {}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from contextloss_monai.transforms import SkeletonTube

        key = (target.data_ptr(), tuple(target.shape))
        if key not in self._tubes:
            self._tubes[key] = torch.stack([SkeletonTube()(item) for item in target])
        return self.loss(input, target, self._tubes[key])


BASE, CLDICE = "DiceCELoss", "SoftDiceclDiceLoss(iter_=50)"  # the ratios' denominators


def losses() -> dict[str, torch.nn.Module]:
    return {
        "DiceCELoss": DiceCELoss(softmax=True, to_onehot_y=True),
        "SoftDiceclDiceLoss(iter_=50)": SoftDiceclDiceLoss(iter_=50, softmax=True, to_onehot_y=True),
        "CompoundClDiceLoss": CompoundClDiceLoss(gamma=0.2, iters=50, softmax=True, to_onehot_y=True),
        "ContextLoss (soft)": ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True),
        "ContextLoss (exact)": ContextLoss(gamma=0.2, softmax=True, to_onehot_y=True, skeleton="exact"),
        "SkeletonRecall (pipeline tube)": PipelineTube(DiceCESkeletonRecallLoss(softmax=True, to_onehot_y=True)),
        "SkeletonRecall (on the fly)": DiceCESkeletonRecallLoss(softmax=True, to_onehot_y=True, on_the_fly=True),
        "cbDice (iters 10)": DiceCECBDiceLoss(iters=10, softmax=True, to_onehot_y=True),
        "cbDice (iters 50)": DiceCECBDiceLoss(iters=50, softmax=True, to_onehot_y=True),
    }


def step(loss_fn: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor) -> None:
    x = logits.clone().requires_grad_()
    loss_fn(x, target).backward()
    if x.is_cuda:
        torch.cuda.synchronize()


def time_loss(loss_fn, logits, target, repeats: int) -> float:
    step(loss_fn, logits, target)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(loss_fn, logits, target)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_child(name: str, inputs_path: str, queue) -> None:
    """Peak growth of the resident size during one step, sampled every 0.2 ms in a thread."""
    logits, target = torch.load(inputs_path)
    loss_fn = losses()[name]
    # no warm-up here: memory a warm-up frees stays with the allocator and would hide the peak
    baseline, peak, done = _current_rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss_mb())
            time.sleep(0.0002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    step(loss_fn, logits, target)
    done.set()
    sampler.join()
    queue.put(max(peak[0] - baseline, 0.0))


def peak_memory_mb(name: str, logits: torch.Tensor, target: torch.Tensor) -> float:
    """Extra peak memory (MiB) of one forward + backward: the CUDA peak allocation, or on the CPU the growth
    of the resident size (sampled) of a fresh (spawned: forking after torch's thread pools have started can
    deadlock) child process that loads the same inputs from a file."""
    if logits.is_cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(losses()[name], logits, target)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        inputs_path = os.path.join(tmp, "inputs.pt")
        torch.save((logits, target), inputs_path)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=_peak_rss_child, args=(name, inputs_path, queue))
        child.start()
        value = queue.get()
        child.join()
    return value


def _ratio(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss bench-losses", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--losses", nargs="+", choices=list(losses()), metavar="LOSS",
                        help=f"only these losses (default: all): {', '.join(map(repr, losses()))}")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    names = [name for name in losses() if args.losses is None or name in args.losses or name == BASE]

    rows = []
    for shape_name in args.shapes:
        shape = SHAPES[shape_name]
        logits, target = make_inputs(shape)
        logits, target = logits.to(args.device), target.to(args.device)
        memory = {name: peak_memory_mb(name, logits, target) for name in names}
        timings, modules = {}, losses()
        for name in names:
            timings[name] = time_loss(modules[name], logits, target, args.repeats)
            print(f"  {shape_name} {name}: {timings[name] * 1000:.1f} ms", flush=True)
        for name in timings:
            rows.append(
                (
                    "x".join(map(str, shape)),
                    name,
                    timings[name] * 1000,
                    memory[name],
                    timings[name] / timings[BASE],
                    timings[name] / timings[CLDICE] if CLDICE in timings else math.nan,
                )
            )

    header = ("shape", "loss", "fwd+bwd ms", "peak MiB", "x DiceCE", "x clDice")
    cells = [(r[0], r[1], f"{r[2]:.1f}", f"{r[3]:.0f}", f"{r[4]:.2f}", _ratio(r[5])) for r in rows]
    print(format_table(header, cells, markdown=args.markdown))
    for shape_name in args.shapes if "ContextLoss (soft)" in names else []:
        shape = "x".join(map(str, SHAPES[shape_name]))
        r = {row[1]: row for row in rows if row[0] == shape}["ContextLoss (soft)"]
        ok = r[4] <= 10 and (math.isnan(r[5]) or r[5] <= 1 / 20)
        versus_cldice = "" if math.isnan(r[5]) else f", {r[5]:.4f}x clDice (target <= 0.05)"
        print(f"{shape}: ContextLoss = {r[4]:.2f}x DiceCE (target <= 10){versus_cldice}: {'met' if ok else 'NOT met'}")

    return 0
