#!/usr/bin/env python
"""The paper's Table 7 as a measured table: milliseconds per training step and peak GPU memory of each loss
at the paper's patch sizes, plus the loss alone (forward + backward) and its device-to-host copies per call.

One training step = forward of an nnU-Net-sized ``DynUNet`` (deep supervision) under bf16 autocast, the loss
(computed in float32), backward, an SGD step — the same for every loss, so the ratios are the loss's cost.
Losses: Dice & CE (MONAI ``DiceCELoss``), CLoss with the soft and the exact skeleton, Thin CLoss, clDice
(MONAI's ``SoftDiceclDiceLoss``, 50 iterations), compound clDice, Skeleton Recall (Dice & CE + its recall term,
the tube made once before the timed runs, as the bundles' data pipeline makes it) and cbDice (the authors' weights
and 10 iterations), all with ``include_background=False`` as the bundles train. Device-to-host copies are counted with ``torch.profiler`` (CUDA memcpy DtoH events and
host reads of device scalars) during one loss call. Every number of one table comes from one run.

Usage:
    contextloss bench-gpu                    # the four datasets on the GPU (about 6 minutes on an H100)
    contextloss bench-gpu --markdown         # the docs/gpu.md table
    contextloss bench-gpu --smoke --device cpu   # seconds: tiny shapes, checks the script itself
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from contextloss_monai.benchmarks.table import format_table, markdown_row

#: dataset -> (spatial patch, batch size, input channels); the paper's nnU-Net patches (CLD 160²×90 padded
#: to 96 so that DynUNet's five poolings divide it), batch sizes that fit one 80 GB GPU with every loss
PAPER_PATCHES = {
    "Roads 2D": ((1280, 1024), 4, 3),
    "HRF 2D": ((1536, 1024), 2, 3),
    "Vessap 3D": ((256, 256, 32), 2, 2),
    "CLD 3D": ((160, 160, 96), 2, 1),
}
SMOKE_PATCHES = {"2D (smoke)": ((32, 32), 1, 3), "3D (smoke)": ((16, 16, 16), 1, 2)}
LOSSES = ("Dice & CE", "CLoss (soft)", "CLoss (exact)", "Thin CLoss", "clDice (50)", "compound clDice", "Skeleton Recall", "cbDice (10)")


def make_loss(name: str) -> torch.nn.Module:
    from monai.losses import DiceCELoss, SoftDiceclDiceLoss

    from contextloss_monai.benchmarks.losses import PipelineTube
    from contextloss_monai.losses import CompoundClDiceLoss, ContextLoss, DiceCECBDiceLoss, DiceCESkeletonRecallLoss

    common = {"include_background": False, "to_onehot_y": True, "softmax": True}
    return {
        "Dice & CE": lambda: DiceCELoss(**common),
        "CLoss (soft)": lambda: ContextLoss(gamma=0.2, skeleton="soft", **common),
        "CLoss (exact)": lambda: ContextLoss(gamma=0.2, skeleton="exact", **common),
        "Thin CLoss": lambda: ContextLoss(gamma=0.2, context=False, **common),
        "clDice (50)": lambda: SoftDiceclDiceLoss(iter_=50, alpha=0.2, **common),
        "compound clDice": lambda: CompoundClDiceLoss(gamma=0.2, iters=50, **common),
        "Skeleton Recall": lambda: PipelineTube(DiceCESkeletonRecallLoss(weight=1.0, **common)),
        "cbDice (10)": lambda: DiceCECBDiceLoss(weight=1.0, iters=10, **common),
    }[name]()


def make_network(spatial_dims: int, in_channels: int, levels: int = 6) -> torch.nn.Module:
    """An nnU-Net-sized DynUNet (filters 32 … 320, six levels) with deep supervision."""
    from monai.networks.nets import DynUNet

    return DynUNet(
        spatial_dims, in_channels, 2, [[3] * spatial_dims] * levels, [[1] * spatial_dims] + [[2] * spatial_dims] * (levels - 1),
        [[2] * spatial_dims] * (levels - 1), filters=[32, 64, 128, 256, 320, 320][:levels], norm_name="instance",
        deep_supervision=True, deep_supr_num=2,
    )


def thin_structures(
    batch: int, spatial: tuple[int, ...], channels: int, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy ``channels``-channel images and class-index labels of random thin lines / tubes (about 3 pixels wide)."""
    generator = torch.Generator().manual_seed(seed)
    label = torch.zeros(batch, 1, *spatial, dtype=torch.bool)
    for b in range(batch):
        for _ in range(12):
            start = torch.rand(len(spatial), generator=generator) * torch.tensor(spatial)
            end = torch.rand(len(spatial), generator=generator) * torch.tensor(spatial)
            t = torch.linspace(0, 1, 4 * max(spatial))[:, None]
            points = ((1 - t) * start + t * end).round().long()
            for offset in range(-1, 2):
                idx = (points + offset).clamp(min=0)
                idx = torch.minimum(idx, torch.tensor(spatial) - 1)
                label[(b, 0, *idx.T)] = True
    image = label.float().repeat(1, channels, *([1] * len(spatial)))
    image = image + 0.5 * torch.randn(image.shape, generator=generator)
    return image.to(device), label.float().to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, budget_s: float = 20.0) -> float:
    """Median milliseconds of ``fn()`` after one warm-up call: ``repeats`` calls, fewer (at least one) when
    they would take longer than ``budget_s`` (the exact skeleton of a large untrained 3D prediction)."""
    fn()
    synchronize(device)
    times = []
    while len(times) < repeats and (not times or sum(times) / 1000 < budget_s):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def count_host_copies(fn) -> int:
    """Device-to-host copies and host reads of device values during ``fn()`` (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        fn()
    names = [event.name for event in prof.events()]
    return sum("DtoH" in n or "Device -> Pageable" in n or n == "aten::_local_scalar_dense" for n in names)


def bench_dataset(
    name: str, spatial: tuple[int, ...], batch: int, channels: int, device: torch.device, repeats: int, levels: int = 6
) -> list[dict]:
    from contextloss_monai.bundle import StackedDeepSupervisionLoss

    image, label = thin_structures(batch, spatial, channels, device)
    rows = []
    for loss_name in LOSSES:
        torch.manual_seed(0)
        network = make_network(len(spatial), channels, levels).to(device)
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.99, nesterov=True)
        loss = StackedDeepSupervisionLoss(make_loss(loss_name))
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                output = network(image)
            value = loss(output, label)
            value.backward()
            optimizer.step()

        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        step_ms = timed(step, device, repeats)
        peak_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        with torch.no_grad(), autocast:
            logits = network.eval()(image).detach().float()
        network.train()
        single = make_loss(loss_name)

        def loss_only():
            z = logits.clone().requires_grad_(True)
            single(z, label).backward()

        loss_ms = timed(loss_only, device, repeats)
        rows.append({"dataset": name, "patch": "×".join(map(str, spatial)), "batch": batch, "loss": loss_name,
                     "step_ms": step_ms, "peak_gb": peak_gb, "loss_ms": loss_ms, "host_copies": count_host_copies(loss_only)})
    base = next(r for r in rows if r["loss"] == "Dice & CE")
    cldice = next(r for r in rows if r["loss"] == "clDice (50)")
    for row in rows:
        row["step_x_dice_ce"] = row["step_ms"] / base["step_ms"]
        row["step_x_cldice"] = row["step_ms"] / cldice["step_ms"]
        row["memory_x_cldice"] = row["peak_gb"] / cldice["peak_gb"] if cldice["peak_gb"] == cldice["peak_gb"] else float("nan")
        row["loss_x_dice_ce"] = row["loss_ms"] / base["loss_ms"]
    return rows


HEADER = ("dataset (patch, batch)", "loss", "step ms", "× Dice & CE", "× clDice", "peak GB", "× clDice memory", "loss ms",
          "loss × Dice & CE", "host copies per loss call")


def table_cells(r: dict) -> tuple[str, ...]:
    """One row of :func:`bench_dataset` as the cells of :data:`HEADER`."""
    return (f"{r['dataset']} ({r['patch']}, {r['batch']})", r["loss"], f"{r['step_ms']:.1f}", f"{r['step_x_dice_ce']:.2f}",
            f"{r['step_x_cldice']:.2f}", f"{r['peak_gb']:.1f}", f"{r['memory_x_cldice']:.2f}", f"{r['loss_ms']:.1f}",
            f"{r['loss_x_dice_ce']:.1f}", str(r["host_copies"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss bench-gpu", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=None, help=f"any of {list(PAPER_PATCHES)} (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 1 repeat: checks the script, measures nothing")
    parser.add_argument("--markdown", action="store_true", help="print the docs/gpu.md table")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device (use --device cpu --smoke to check the script)")
    patches = SMOKE_PATCHES if args.smoke else {k: v for k, v in PAPER_PATCHES.items() if args.datasets is None or k in args.datasets}
    if not patches:
        parser.error(f"--datasets must name some of {list(PAPER_PATCHES)}")
    repeats = 1 if args.smoke else args.repeats
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    started = time.perf_counter()
    print(f"Device: {device_name}; torch {torch.__version__}; bf16 autocast, SGD; median of up to {repeats} repeats.\n")
    print(format_table(HEADER, [], markdown=args.markdown), flush=True)
    for name, (spatial, batch, channels) in patches.items():  # each dataset's rows as soon as they are measured
        print(f"{name}: patch {spatial}, batch {batch} ...", file=sys.stderr, flush=True)
        rows = bench_dataset(name, spatial, batch, channels, device, repeats, levels=4 if args.smoke else 6)
        print("\n".join(markdown_row(table_cells(r)) if args.markdown else "  ".join(table_cells(r)) for r in rows), flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all", file=sys.stderr)
    return 0

