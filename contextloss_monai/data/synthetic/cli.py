"""``contextloss make-synthetic``: write a synthetic dataset folder (NIfTI + dataset.json with 5 folds) that the bundles train on.

Example:
    contextloss make-synthetic --kind roads --out data/roads_synthetic
    contextloss make-synthetic --kind vessels3d --out data/vessels --n-train 32 --n-test 8 --size 96 --seed 1
"""

from __future__ import annotations

import argparse
import time

from contextloss_monai.data.synthetic import DEFAULTS, GENERATORS, write_synthetic_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contextloss make-synthetic", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", required=True, choices=sorted(GENERATORS))
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--n-train", type=int, default=None, help="training cases (default per kind: %s)" %
                        ", ".join(f"{k} {v['n_train']}" for k, v in DEFAULTS.items()))
    parser.add_argument("--n-test", type=int, default=None, help="test cases (default per kind)")
    parser.add_argument("--size", type=int, default=None, help="image edge length in pixels / voxels (default per kind: %s)" %
                        ", ".join(f"{k} {v['size']}" for k, v in DEFAULTS.items()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    datalist = write_synthetic_dataset(  # bad input raises: contextloss prints it in one line (exit 2)
        args.kind, args.out, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed,
        n_folds=args.folds, overwrite=args.overwrite,
    )
    print(f"wrote {datalist} in {time.perf_counter() - start:.1f} s")
    return 0
