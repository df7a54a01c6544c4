"""``contextloss demo``: the one-command demo: ContextLoss against Dice & CE on synthetic roads, through the roads_2d bundle.

Generates a synthetic roads dataset (street grids with trees and shadows over the roads), pretrains the
bundle's DynUNet with Dice & CE until validation Dice plateaus, fine-tunes it two ways from the same
checkpoint for the same number of optimizer steps (Dice & CE continued, and ContextLoss with γ = 0.2), runs
inference with the topological post-processing, evaluates, prints the paper's table with the step counts and
an image-by-image comparison, and writes PNG figures: training curves and, for the test images where
Dice & CE leaves the most gaps, the predictions with each gap ringed — blue where ContextLoss closed it, red
where it is still open. Everything goes to one output folder, printed at the end: the rendered bundle
(``bundles/roads_2d``), the data, each fold's run and, under each run's ``logs/``, the stages' full logs (the
terminal shows one progress bar per stage and the results; ``--verbose`` shows the log lines too).

The time goes into optimizer steps rather than folds (one fold): a fine-tuning of a handful of steps cannot
show the loss's effect. On a GPU (``--device cuda``, the default where CUDA is available) every length scales up.

Example:
    contextloss demo                 # about 10 minutes on a 2-core CPU
    contextloss demo --smoke         # seconds: tiny data, a few steps (a test of the pipeline)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from contextloss_monai.method import Method

BUNDLE = "roads_2d"
PRETRAINED, BASELINE, CLOSS = Method(None), Method("dice_ce", 0.0), Method("context", 0.2)


def write_figures(out: Path, fold_dir: Path, n_cases: int) -> list[Path]:
    """Training curves of the fold, and gap overlays of the ``n_cases`` test images where Dice & CE leaves
    the longest gaps in the label's centre line."""
    import json

    import nibabel as nib
    import numpy as np

    from contextloss_monai.experiment.figures import label_gaps, plot_gap_overlay, plot_training_curves
    from contextloss_monai.layout import RunLayout
    from contextloss_monai.topology import critical_pixel_mask

    layout = RunLayout(fold_dir)
    logs = {"pretrain (Dice & CE)": layout.training_log(PRETRAINED.stage),
            "fine-tune Dice & CE": layout.training_log(BASELINE.stage),
            "fine-tune CLoss γ=0.2": layout.training_log(CLOSS.stage)}
    figures = [plot_training_curves({k: v for k, v in logs.items() if v.is_file()}, out / "training_curves.png",
                                    title=f"roads_2d, {fold_dir.name}")]
    dataset = out / "data"

    def read(path: Path) -> np.ndarray:
        return np.asanyarray(nib.load(path).dataobj)

    cases = []
    for item in json.loads((dataset / "dataset.json").read_text())["test"]:
        case = Path(item["image"]).name.split(".")[0]
        label = read(dataset / item["label"]).astype(bool)
        baseline, closs = (read(layout.prediction(m.key, case)).astype(bool) for m in (BASELINE, CLOSS))
        gaps = label_gaps(label, baseline, closs)
        cases.append((sum(g["length"] for g in gaps), case, item, label, baseline, closs, gaps))
    for _, case, item, label, baseline, closs, gaps in sorted(cases, key=lambda c: -c[0])[:n_cases]:
        critical = critical_pixel_mask(baseline[None, None], label[None, None], skeleton="exact")[0, 0]
        closed = sum(g["closed"] for g in gaps)
        figures.append(plot_gap_overlay(read(dataset / item["image"]), label, baseline, closs, out / f"gaps_{case}.png", critical=critical, gaps=gaps,
                                        title=f"{case}: Dice & CE leaves {len(gaps)} gaps, CLoss (γ = 0.2) closes {closed} "
                                              "(both with the topological post-processing)"))
    return figures


#: per device: the most pretraining epochs, the optimizer steps of each fine-tuning, the training crop (on a
#: CPU smaller than the bundle's 128², so that 300 fine-tuning steps per method fit the demo's 10 minutes)
LENGTHS = {"cpu": (60, 300, [96, 96]), "cuda": (300, 2000, [128, 128])}


def main(argv: list[str] | None = None) -> int:
    from contextloss_monai.bundle.render import bundle_folder
    from contextloss_monai.experiment import PRETRAIN_PATIENCE, device_override, run_experiment, write_results
    from contextloss_monai.layout import RunLayout

    parser = argparse.ArgumentParser(prog="contextloss demo", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    parser.add_argument("--folds", type=int, nargs="+", default=[0], help="cross-validation folds (default: one)")
    parser.add_argument("--epochs", type=int, default=None, help="the most pretraining epochs; it stops earlier when validation "
                        f"Dice plateaus (default: {LENGTHS['cpu'][0]} on a CPU, {LENGTHS['cuda'][0]} on a GPU)")
    parser.add_argument("--finetune-steps", type=int, default=None, help="optimizer steps of each fine-tuning "
                        f"(default: {LENGTHS['cpu'][1]} on a CPU, {LENGTHS['cuda'][1]} on a GPU)")
    parser.add_argument("--n-train", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: CUDA when available; mixed precision on CUDA)")
    parser.add_argument("--figures", type=int, default=2, help="test images drawn as PNG (those with the most Dice & CE gaps)")
    parser.add_argument("--finetune-lr", type=float, default=None, help="fine-tuning learning rate (default: the bundle's, 0.0001)")
    parser.add_argument("--smoke", action="store_true", help="tiny data, a few steps: checks the pipeline in seconds")
    parser.add_argument("--verbose", action="store_true", help="the stages' log lines on the terminal too (always in each run's logs/)")
    args = parser.parse_args(argv)
    overrides = {} if args.finetune_lr is None else {"finetune_learning_rate": args.finetune_lr}
    overrides.update(device_override(args.device))
    epochs, steps, overrides["patch_size"] = LENGTHS["cuda" if "cuda" in overrides["device"] else "cpu"]
    args.epochs, args.finetune_steps = args.epochs or epochs, args.finetune_steps or steps
    if args.smoke:
        args.folds, args.epochs, args.finetune_steps, args.n_train, args.n_test, args.size, args.figures = [0], 2, 4, 5, 2, 64, 1
        overrides["patch_size"] = [64, 64]
    overrides.update(pretrain_patience=PRETRAIN_PATIENCE, finetune_steps=args.finetune_steps)

    from contextloss_monai.data.synthetic import write_synthetic_dataset

    start = time.perf_counter()
    out = Path(args.out).absolute()
    data = out / "data"
    if not (data / "dataset.json").is_file():
        write_synthetic_dataset("roads", data, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=0, overwrite=True)
    methods = [PRETRAINED, BASELINE, CLOSS]
    rows = run_experiment(bundle_folder(BUNDLE, out), out, data, args.folds, methods, args.epochs, verbose=args.verbose, **overrides)
    _, md_path = write_results(rows, out, title=f"Demo: synthetic roads, {len(args.folds)} fold(s), {args.finetune_steps} fine-tuning steps per method")
    figures = write_figures(out, RunLayout.of_fold(out, args.folds[0]).root, args.figures)
    print("\n" + md_path.read_text())
    print("figures:\n" + "\n".join(f"  {f}" for f in figures))
    print(f"\nall outputs in {out}, the stages' logs in {out}/fold*/logs ({time.perf_counter() - start:.0f} s)")
    return 0
