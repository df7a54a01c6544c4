#!/usr/bin/env python
"""The one-command demo: ContextLoss against Dice & CE on synthetic roads, through the roads_2d bundle.

Generates a small synthetic roads dataset, pretrains the bundle's DynUNet with Dice & CE, fine-tunes it two
ways from the same checkpoint (Dice & CE continued, and ContextLoss with γ = 0.2), runs inference with the
topological post-processing, evaluates, prints the paper's table (over several folds, mean ± std) and
writes PNG figures: training curves and, for a few test images, the predictions with the gaps that
ContextLoss closed or left open. Everything goes to one output folder, printed at the end.

Example:
    python scripts/demo.py                 # about 7 minutes on a 2-core CPU
    python scripts/demo.py --smoke         # seconds: tiny data, one fold, 2 epochs (a test of the pipeline)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from contextloss_monai.experiment import Method, device_override, run_experiment, write_results

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "roads_2d"
PRETRAINED, BASELINE, CLOSS = Method(None), Method("dice_ce", 0.0), Method("context", 0.2)


def write_figures(out: Path, fold_dir: Path, n_cases: int) -> list[Path]:
    """Training curves of the fold, and gap overlays of its first ``n_cases`` test images."""
    import json

    import nibabel as nib
    import numpy as np

    from contextloss_monai.experiment.figures import plot_gap_overlay, plot_training_curves
    from contextloss_monai.layout import RunLayout
    from contextloss_monai.topology import critical_pixel_mask

    layout = RunLayout(fold_dir)
    logs = {"pretrain (Dice & CE)": layout.training_log(RunLayout.PRETRAIN_STAGE),
            "fine-tune Dice & CE": layout.training_log(RunLayout.stage_of(BASELINE.key)),
            "fine-tune CLoss γ=0.2": layout.training_log(RunLayout.stage_of(CLOSS.key))}
    figures = [plot_training_curves({k: v for k, v in logs.items() if v.is_file()}, out / "training_curves.png",
                                    title=f"roads_2d, {fold_dir.name}")]
    dataset = out / "data"
    for item in json.loads((dataset / "dataset.json").read_text())["test"][:n_cases]:
        case = Path(item["image"]).name.split(".")[0]
        image = np.asanyarray(nib.load(dataset / item["image"]).dataobj)
        label = np.asanyarray(nib.load(dataset / item["label"]).dataobj).astype(bool)
        baseline = np.asanyarray(nib.load(layout.prediction(BASELINE.key, case)).dataobj).astype(bool)
        closs = np.asanyarray(nib.load(layout.prediction(CLOSS.key, case)).dataobj).astype(bool)
        critical = critical_pixel_mask(baseline[None, None], label[None, None], skeleton="exact")[0, 0]
        figures.append(plot_gap_overlay(image, label, baseline, closs, out / f"gaps_{case}.png", critical=critical,
                                        title=f"{case}: Dice & CE vs CLoss (γ = 0.2), both with the topological post-processing"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "demo"), help="output folder (default: outputs/demo)")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40, help="pretraining epochs (fine-tuning: 5 %%, at least 1)")
    parser.add_argument("--n-train", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: CUDA when available; mixed precision on CUDA)")
    parser.add_argument("--figures", type=int, default=3, help="test images drawn as PNG")
    parser.add_argument("--finetune-lr", type=float, default=None, help="fine-tuning learning rate (default: the bundle's, 0.0001)")
    parser.add_argument("--smoke", action="store_true", help="tiny data, one fold, 2 epochs: checks the pipeline in seconds")
    args = parser.parse_args(argv)
    overrides = {} if args.finetune_lr is None else {"finetune_learning_rate": args.finetune_lr}
    overrides.update(device_override(args.device))
    if args.smoke:
        args.folds, args.epochs, args.n_train, args.n_test, args.size, args.figures = [0], 2, 5, 2, 64, 1
        overrides["patch_size"] = [64, 64]

    from contextloss_monai.data.synthetic import write_synthetic_dataset

    start = time.perf_counter()
    out = Path(args.out).absolute()
    data = out / "data"
    if not (data / "dataset.json").is_file():
        write_synthetic_dataset("roads", data, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=0, overwrite=True)
    methods = [PRETRAINED, BASELINE, CLOSS]
    rows = run_experiment(BUNDLE, out, data, args.folds, methods, args.epochs, **overrides)
    _, md_path = write_results(rows, out, title=f"Demo: synthetic roads, {len(args.folds)} fold(s), {args.epochs} pretraining epochs")
    figures = write_figures(out, out / f"fold{args.folds[0]}", args.figures)
    print("\n" + md_path.read_text())
    print("figures:\n" + "\n".join(f"  {f}" for f in figures))
    print(f"\nall outputs in {out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
