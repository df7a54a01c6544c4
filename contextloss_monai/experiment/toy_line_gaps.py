"""``contextloss toy-line-gaps``: train a tiny U-Net with ContextLoss on a synthetic batch of lines whose image has gaps.

The labels are straight lines crossing the image; in the image, short stretches of every line are
dimmed to the background level (occlusions), so a pixel-wise model tends to leave the gaps open.
The script prints, every few steps, the loss and the size of the critical pixel mask (the pixels of
all topological errors with their context), which shrinks as the network learns to close the gaps.

Usage:
    contextloss toy-line-gaps [--steps 150] [--size 64] [--batch 8] [--gamma 0.2] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.networks.nets import UNet
from monai.utils import set_determinism

from contextloss_monai.losses import ContextLoss, binarize_prediction
from contextloss_monai.topology import critical_pixel_mask


def line_gap_batch(batch: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(B, 1, S, S)`` of noisy lines with dimmed stretches, and their labels ``(B, 1, S, S)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = np.zeros((batch, 1, size, size), np.float32)
    labels = np.zeros((batch, 1, size, size), np.float32)
    for b in range(batch):
        label = np.zeros((size, size), bool)
        visible = np.zeros((size, size), bool)
        for _ in range(rng.integers(2, 4)):
            angle = rng.uniform(0, np.pi)
            normal = np.array([np.cos(angle), np.sin(angle)])
            offset = rng.uniform(0.25, 0.75) * size
            dist = (xx - size / 2) * normal[0] + (yy - size / 2) * normal[1] + size / 2 - offset
            along = -(xx - size / 2) * normal[1] + (yy - size / 2) * normal[0]
            line = np.abs(dist) <= 1.0
            gap_at = rng.uniform(-size / 4, size / 4)
            gap = np.abs(along - gap_at) < rng.uniform(2.0, 4.0)
            label |= line
            visible |= line & ~gap
        images[b, 0] = visible + 0.35 * rng.standard_normal((size, size))
        labels[b, 0] = label
    return torch.from_numpy(images), torch.from_numpy(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss toy-line-gaps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--gamma", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    set_determinism(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    images, labels = line_gap_batch(args.batch, args.size, args.seed)
    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64), strides=(2, 2), num_res_units=1)
    loss_fn = ContextLoss(gamma=args.gamma, softmax=True, to_onehot_y=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    print(f"ContextLoss(gamma={args.gamma}) on {args.batch} images of {args.size}x{args.size} lines with gaps")
    print(f"{'step':>5} {'loss':>8} {'critical mask px':>17} {'label px':>9}")
    start = time.time()
    history = []
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        logits = net(images)
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()
        if step == 1 or step % 10 == 0 or step == args.steps:
            with torch.no_grad():
                pred = binarize_prediction(net(images), softmax=True)[:, 1:]
                mask_px = int(critical_pixel_mask(pred, labels.bool()).sum())
            history.append((loss.item(), mask_px))
            print(f"{step:>5} {loss.item():>8.4f} {mask_px:>17d} {int(labels.sum()):>9d}", flush=True)
    (first_loss, first_mask), (last_loss, last_mask) = history[0], history[-1]
    print(
        f"done in {time.time() - start:.0f} s: loss {first_loss:.3f} -> {last_loss:.3f}, "
        f"critical mask {first_mask} -> {last_mask} px"
    )
    return 0
