"""``contextloss mask-gradients``: where the restricted term of ContextLoss pushes: missed connections or false-positive connections.

The critical pixel mask is the union of two parts (:func:`~contextloss_monai.topology.critical_pixel_mask`): ``M_fn``, the context of the label's
skeleton pieces the prediction misses (gaps; gradient raises the foreground), and ``M_fp``, the
context of the prediction's skeleton pieces outside the label (false bridges and fragments; gradient
lowers it). For the pretrained models of a benchmark or demo run, this script measures on training
images how large each part is and how the gradient of the restricted cross-entropy and of the
restricted Dice, with respect to the logits, divides between them::

    contextloss mask-gradients --bundle roads_2d --run outputs/benchmark_roads_2d --folds 0 1 2 --restricted mask_mean

``--run`` is an output folder of ``contextloss benchmark`` or ``contextloss demo`` (``data/`` and
``fold<k>/models/pretrained.pt``). Only the restricted term is differentiated (``gamma = 1``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from tqdm import tqdm

from contextloss_monai.bundle import dataset_items, load_weights
from contextloss_monai.bundle.render import bundle_folder
from contextloss_monai.layout import RunLayout
from contextloss_monai.losses import DEFAULT_RESTRICTED, RESTRICTED_READINGS, ContextLoss
from contextloss_monai.topology import critical_pixel_mask


def restricted_gradient_split(
    logits: torch.Tensor, label: torch.Tensor, iters: int = 50, restricted: str = DEFAULT_RESTRICTED
) -> dict[str, float]:
    """Pixels of ``M_fn`` / ``M_fp`` and the summed ``|∂L/∂(z_1 − z_0)|`` of the restricted CE and Dice on each.

    Args:
        logits: two-class logits ``(1, 2, *spatial)`` (background, foreground).
        label: binary foreground label ``(1, 1, *spatial)``.
        iters: soft-skeleton iterations, as in the loss.
        restricted: the loss's reading of the restricted term (the split within each part does not depend on it,
            the CE / Dice ratio does).

    Returns:
        ``{"fn_pixels", "fp_pixels", "ce_fn", "ce_fp", "dice_fn", "dice_fp"}``.
    """
    if logits.ndim < 4 or logits.shape[:2] != (1, 2) or label.shape != (1, 1, *logits.shape[2:]):
        raise ValueError(f"logits must be (1, 2, *spatial) and label (1, 1, *spatial), got {tuple(logits.shape)} and {tuple(label.shape)}.")
    pred = logits.argmax(1, keepdim=True) == 1
    missed, false_positive = critical_pixel_mask(pred, label.bool(), skeleton="soft", iters=iters, return_parts=True)
    parts = {"fn": missed[0, 0], "fp": false_positive[0, 0]}
    out = {f"{part}_pixels": float(mask.sum()) for part, mask in parts.items()}
    onehot = torch.cat([1 - label, label], 1).float()
    for name, alpha in (("ce", 1.0), ("dice", 0.0)):
        z = logits.detach().clone().requires_grad_(True)
        ContextLoss(gamma=1.0, alpha=alpha, softmax=True, iters=iters, restricted=restricted)(z, onehot).backward()
        margin_grad = (z.grad[0, 1] - z.grad[0, 0]).abs()
        out.update({f"{name}_{part}": float(margin_grad[mask].sum()) for part, mask in parts.items()})
    return out


def _share(a: float, b: float) -> str:
    return f"{100 * a / (a + b):.0f} %" if a + b > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss mask-gradients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="roads_2d", help="bundle name or folder (default: roads_2d)")
    parser.add_argument("--run", required=True, help="benchmark or demo output folder (data/, fold<k>/models/pretrained.pt)")
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--cases", type=int, default=8, help="training images per fold")
    parser.add_argument("--restricted", default=DEFAULT_RESTRICTED, choices=list(RESTRICTED_READINGS),
                        help=f"CLoss's reading of the restricted term (default: {DEFAULT_RESTRICTED})")
    args = parser.parse_args(argv)

    run = Path(args.run)
    config = ConfigParser()
    bundle = bundle_folder(args.bundle, run)
    config.read_config(str(bundle / "configs" / "inference.yaml"))
    config["bundle_root"] = str(bundle)
    config["load_keys"] = ["image", "label"]
    preprocessing = config.get_parsed_content("preprocessing")
    inferer = config.get_parsed_content("inferer")
    totals: dict[str, float] = {}
    for fold in args.folds:
        network = load_weights(config.get_parsed_content("network_def", lazy=False), RunLayout.of_fold(run, fold).pretrained_model,
                               setting="--run").eval()
        items = dataset_items(run / "data", role="train", fold=fold)[: args.cases]
        if not items:
            raise ValueError(f"--run {run}: no training case for fold {fold}.")
        for item in tqdm(items, desc=f"fold {fold}"):
            data = preprocessing(item)
            with torch.no_grad():
                logits = inferer(data["image"][None].as_tensor(), network)
            for key, value in restricted_gradient_split(logits, data["label"][None].as_tensor(), restricted=args.restricted).items():
                totals[key] = totals.get(key, 0.0) + value

    print(f"\n{args.bundle}, pretrained models of {run}, folds {args.folds}, {args.cases} training images each, "
          f"{args.restricted} reading:\n")
    print("| | missed connections (M_fn) | false-positive connections (M_fp) |")
    print("|---|---|---|")
    print(f"| pixels of M | {_share(totals['fn_pixels'], totals['fp_pixels'])} | {_share(totals['fp_pixels'], totals['fn_pixels'])} |")
    for name, title in (("ce", "restricted CE"), ("dice", "restricted Dice")):
        print(f"| gradient of the {title} | {_share(totals[name + '_fn'], totals[name + '_fp'])} | {_share(totals[name + '_fp'], totals[name + '_fn'])} |")
    ce, dice = totals["ce_fn"] + totals["ce_fp"], totals["dice_fn"] + totals["dice_fp"]
    print(f"\nsummed gradient magnitude, restricted CE / restricted Dice: {ce / dice:.1f}" if dice > 0 else "\nno restricted Dice gradient")
    return 0
