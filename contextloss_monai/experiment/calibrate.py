"""``contextloss calibrate``: how hard is the synthetic data? Pretrain each bundle as the benchmark does (Dice & CE only, fold 0) and
compare the *pretrained* model's topology errors with the paper's nnU-Net row for the real dataset.

The generators are calibrated on this table only — never on which fine-tuning method wins. A kind is "as
hard as the paper's data" when its pretrained AGS lands in the paper's band (AGS ± tolerance) and its
errors have the paper's make-up (e.g. Roads: more loop errors, e1, than component errors, e0).

Writes ``calibration.md`` / ``calibration.csv`` in ``--out`` and prints the table; the kinds measured by an
earlier run into the same ``--out`` stay in it; ``seconds`` is the pretraining's training time from its log.
Resumable like the benchmark: a kind whose pretraining and evaluation exist is not trained again.

Example:
    contextloss calibrate --bundles roads_2d              # one kind, about 6 minutes on 2 CPU cores
    contextloss calibrate --bundles roads_2d vessap_3d --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: the paper's pretrained nnU-Net row (Table 1) per bundle: AGS (%) with the band the synthetic data should
#: land in, and e0-Gt where the paper reports it for the Dice & CE-trained network
PAPER_ROWS = {
    "roads_2d": {"ags": 86.46, "band": 5.0, "e0_gt": 0.699},
    "hrf_retina_2d": {"ags": 77.8, "band": 5.0, "e0_gt": 2.780},
    "vessap_3d": {"ags": 96.0, "band": 3.0, "e0_gt": None},
    "cement_lines_3d": {"ags": 79.0, "band": 5.0, "e0_gt": None},
}


def main(argv: list[str] | None = None) -> int:
    from contextloss_monai.bundle.render import bundle_folder
    from contextloss_monai.experiment import (PRETRAIN_MAX_EPOCHS, PRETRAIN_PATIENCE, Method, bundle_setting, device_override,
                                              parse_overrides, run_experiment)
    from contextloss_monai.utils import merge_csv_rows, read_csv_rows, write_csv_rows, write_text_atomic

    parser = argparse.ArgumentParser(prog="contextloss calibrate", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", default=list(PAPER_ROWS), choices=list(PAPER_ROWS))
    parser.add_argument("--out", default="outputs/calibration", help="output folder (default: outputs/calibration)")
    parser.add_argument("--verbose", action="store_true", help="the stages' log lines on the terminal too (always in each run's logs/)")
    parser.add_argument("--epochs", type=int, default=PRETRAIN_MAX_EPOCHS, help="the most pretraining epochs (default: the benchmark's)")
    parser.add_argument("--patience", type=int, default=PRETRAIN_PATIENCE, help="validations without a better Dice before pretraining stops (0: train all epochs)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="synthetic training cases (default: the kind's default)")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="synthetic image size (default: the kind's default)")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="bundle settings, e.g. patch_size=[32,32,16]")
    parser.add_argument("--device", default=None, help="cuda, cpu... (default: CUDA when available)")
    args = parser.parse_args(argv)

    from contextloss_monai.data.synthetic import write_synthetic_dataset

    overrides = parse_overrides(args.override)
    overrides.update(device_override(args.device))
    out = Path(args.out).absolute()
    rows = []
    for name in args.bundles:
        bundle = bundle_folder(name, out)
        data = out / name / "data"
        if not (data / "dataset.json").is_file():
            write_synthetic_dataset(bundle_setting(bundle, "synthetic_kind"), data, n_train=args.n_train, n_test=args.n_test, size=args.size, overwrite=True)
        (result,) = run_experiment(bundle, out / name, data, [args.fold], [Method(None)], args.epochs, verbose=args.verbose,
                                   pretrain_patience=args.patience or None, **overrides)
        paper = PAPER_ROWS[name]
        inside = abs(result["ags"] - paper["ags"]) <= paper["band"]
        rows.append({"bundle": name, "paper_ags": paper["ags"], "band": paper["band"], "ags": round(result["ags"], 2),
                     "in_band": inside, "paper_e0_gt": paper["e0_gt"], "e0_gt": round(result["e0_gt"], 3),
                     "e0": round(result["betti_e0"], 3), "e1": round(result["betti_e1"], 3),
                     "dice": round(100 * result["dice"], 2), "epochs": result["epochs"], "steps": result["steps"],
                     # the pretraining's training seconds from its log: the same when a finished run is re-read
                     "seconds": round(result["seconds_per_epoch"] * result["epochs"], 1)})
    # the kinds measured before stay in the table; every row is formatted as read back (text)
    write_csv_rows(out / "calibration.csv", merge_csv_rows(out / "calibration.csv", rows, ("bundle",)))
    lines = ["| bundle | paper AGS | ours AGS | in band | paper e0-Gt | ours e0-Gt | e0 | e1 | Dice | pretraining steps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in read_csv_rows(out / "calibration.csv"):
        paper_e0gt = "n/a" if not r["paper_e0_gt"] else f"{float(r['paper_e0_gt']):.3f}"
        lines.append(f"| {r['bundle']} | {float(r['paper_ags']):.1f} ± {float(r['band']):g} | {float(r['ags']):.2f} | "
                     f"{'yes' if r['in_band'] == 'True' else 'no'} | {paper_e0gt} | {float(r['e0_gt']):.3f} | "
                     f"{float(r['e0']):.3f} | {float(r['e1']):.3f} | {float(r['dice']):.2f} | {r['steps']} |")
    table = "\n".join(lines) + "\n"
    write_text_atomic(out / "calibration.md", "# Pretrained model on the synthetic data vs the paper's nnU-Net row\n\n" + table)
    print(table)
    return 0
