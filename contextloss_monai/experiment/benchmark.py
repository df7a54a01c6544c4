"""``contextloss benchmark``: the paper's benchmark on any bundle: pretrain once per fold, fine-tune with every requested method from
that checkpoint, post-process, evaluate with the bundle's protocol, and write results.csv + results.md
(Table 1 layout, mean ± std over folds, a paired per-image comparison with Dice & CE, and seconds per epoch
per loss as in Table 7). Training is counted in optimizer steps: pretraining until validation Dice plateaus,
then every method fine-tuned for the same number of steps (default 500). Resumable: finished stages are skipped,
and an interrupted training stage continues from its last epoch's checkpoint; a later run into the same --out
adds its methods and folds to the results (a method and fold run again replace their row).

Example:
    contextloss benchmark --bundle roads_2d --folds 0 1 2 --methods dice_ce context --gammas 0.2
    contextloss benchmark --bundle roads_2d --folds 0 1 2 --methods dice_ce context:0.2 skeleton_recall:1 cbdice:1
    contextloss benchmark --bundle vessap_3d --data /data/vessap_prepared --folds 0 1 2 3 4
    contextloss benchmark --bundle vessap_3d --out outputs/comparison_vessap_3d --folds 0 --methods dice_ce --archive docs/results/comparison_vessap_3d
    contextloss benchmark --bundle path/to/my_bundle --data data/mine     # a bundle folder of your own
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def benchmark_data(bundle: Path, data: str | None, out: Path) -> Path:
    """The dataset a benchmark runs on: ``data`` when given; else the dataset a bundle made by ``contextloss bundle new``
    was made from (its ``dataset_dir``; such a bundle has no ``synthetic_kind``); else ``<out>/data``, where the
    bundle's synthetic data is generated.

    Raises:
        FileNotFoundError: when a bundle without synthetic data names a dataset folder without ``dataset.json``.
    """
    from contextloss_monai.experiment import bundle_setting

    if data is not None:
        return Path(data)
    if bundle_setting(bundle, "synthetic_kind") is not None:
        return out / "data"
    own = Path(bundle_setting(bundle, "dataset_dir"))
    if not (own / "dataset.json").is_file():
        raise FileNotFoundError(f"bundle {bundle} reads its dataset from {own}, which has no dataset.json; pass --data DIR.")
    return own


def main(argv: list[str] | None = None) -> int:
    from contextloss_monai.bundle.render import bundle_folder, bundle_names
    from contextloss_monai.method import DEFAULT_RESTRICTED, LOSS_NAMES, RESTRICTED_READINGS
    from contextloss_monai.experiment import (FINETUNE_STEPS, PRETRAIN_MAX_EPOCHS, PRETRAIN_PATIENCE, archive_results, bundle_setting, device_override,
                                              merge_results, methods_for, parse_overrides, run_experiment,
                                              write_results)

    parser = argparse.ArgumentParser(prog="contextloss benchmark", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help=f"a bundle of this package ({', '.join(bundle_names())}), rendered into --out, "
                        "or a bundle folder")
    parser.add_argument("--data", default=None, help="dataset folder (default: the bundle's synthetic data, generated in --out; for a "
                        "bundle made by contextloss bundle new, its own dataset)")
    parser.add_argument("--out", default=None, help="output folder (default: outputs/benchmark_<bundle name>)")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(LOSS_NAMES), metavar="NAME[:GAMMA,...]",
                        help=f"fine-tuning losses, of {', '.join(LOSS_NAMES)} (default: all); name:γ gives one its own weights, "
                        "e.g. context:0.2 skeleton_recall:1")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.1, 0.2, 0.5], help="the weights of the methods named without one")
    parser.add_argument("--restricted", nargs="+", default=[DEFAULT_RESTRICTED], choices=list(RESTRICTED_READINGS),
                        help="readings of CLoss's restricted term; several: each ContextLoss method once per reading (the ablation)")
    parser.add_argument("--epochs", type=int, default=PRETRAIN_MAX_EPOCHS, help="the most pretraining epochs")
    parser.add_argument("--patience", type=int, default=PRETRAIN_PATIENCE,
                        help="validations without a better validation Dice before pretraining stops (0: train all epochs)")
    parser.add_argument("--finetune-steps", type=int, default=FINETUNE_STEPS,
                        help="optimizer steps of each fine-tuning (0: the bundle's rule, 5 %% of the pretraining epochs)")
    parser.add_argument("--n-train", type=int, default=None, help="synthetic training cases (default: the kind's default)")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="synthetic image size (default: the kind's default)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: CUDA when available; mixed precision on CUDA)")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="bundle settings for every stage, e.g. patch_size=[64,64] (values parsed as YAML)")
    parser.add_argument("--archive", default=None, metavar="DIR",
                        help="also copy the tables and the per-image metrics they come from to DIR (a few kB, to commit; e.g. docs/results/<run>)")
    parser.add_argument("--verbose", action="store_true", help="the stages' log lines on the terminal too (always in each run's logs/)")
    args = parser.parse_args(argv)
    try:
        methods = methods_for(args.methods, args.gammas, tuple(args.restricted))
    except ValueError as error:
        parser.error(str(error))

    from contextloss_monai.data.synthetic import write_synthetic_dataset

    out = Path(args.out or Path("outputs") / f"benchmark_{Path(args.bundle).name}").absolute()
    bundle = bundle_folder(args.bundle, out)
    data = benchmark_data(bundle, args.data, out)
    if args.data is None and not (data / "dataset.json").is_file():
        write_synthetic_dataset(bundle_setting(bundle, "synthetic_kind"), data, n_train=args.n_train, n_test=args.n_test, size=args.size, overwrite=True)
    overrides = parse_overrides(args.override)
    overrides.update(device_override(args.device))
    overrides.setdefault("pretrain_patience", args.patience or None)
    overrides.setdefault("finetune_steps", args.finetune_steps or None)
    start = time.perf_counter()
    rows = run_experiment(bundle, out, data, args.folds, methods, args.epochs,
                          verbose=args.verbose, **overrides)
    rows = merge_results(out, rows)  # earlier runs into the same folder stay in the tables
    folds = sorted({int(r["fold"]) for r in rows})
    csv_path, md_path = write_results(rows, out, title=f"{args.bundle}: {len(folds)} fold(s) ({', '.join(map(str, folds))})")
    print(md_path.read_text())
    print(f"results: {csv_path} and {md_path} ({time.perf_counter() - start:.0f} s)")
    if args.archive:
        archived = archive_results(out, args.archive)
        print(f"archived {len(archived)} files to {args.archive}")
    return 0
