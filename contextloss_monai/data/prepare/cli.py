"""``contextloss prepare <dataset>``: convert a public dataset's extracted archive into the bundles' dataset folder.

Datasets (each follows its archive's documented layout)::

    roads    Massachusetts Roads (https://www.cs.toronto.edu/~vmnih/data/: mass_roads/{train,valid,test}/{sat,map},
             or the Kaggle mirror balraj98/massachusetts-roads-dataset: tiff/{train,val,test}{,_labels}); images with
             more than 4 % white (no-data) pixels are dropped, as in the paper (421 train / 49 test)
    hrf      HRF fundus database (https://www5.cs.fau.de/research/data/fundus-images/, all.zip extracted:
             images/, manual1/, mask/); the last three images of each group are the test split (36 / 9)
    vessap   VesSAP annotated volumes (two channels; Todorov et al., Nat. Methods 2020), found by glob patterns
             (NIfTI or TIFF stacks), paired in sorted order; the last 3 are the test split (8 / 3)
    cld      bone cement line volumes (1024 x 1024 x 600 voxels of (45.6 nm)^3), found by glob patterns and
             paired in sorted order; the last 4 are the test split (13 / 4)
    folder   any folder of images, labels and optional field-of-view masks, paired by case id
             (contextloss prepare folder --help)

Example:
    contextloss prepare roads /data/mass_roads --out data/roads
    contextloss prepare vessap /data/vessap --out data/vessap --channel-glob "raw/*_C00.nii.gz" "raw/*_C01.nii.gz"
    contextloss prepare folder --images "DRIVE/*/images/*.tif" --labels "DRIVE/*/1st_manual/*.gif" --masks "DRIVE/*/mask/*.gif" \
        --image-suffix _training _test --label-suffix _manual1 --mask-suffix _training_mask _test_mask --test-glob "0*" "1*" "20" \
        --structure vessel --out data/drive
"""

from __future__ import annotations

import argparse
import time

__all__ = ["main"]


def _converter(commands, name: str, help: str, source_help: str) -> argparse.ArgumentParser:
    """A converter's parser with the arguments every converter takes: the source folder, ``--out``, ``--folds``,
    ``--seed`` and ``--overwrite``."""
    parser = commands.add_parser(name, help=help, description=help)
    parser.add_argument("source", help=source_help)
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one converter; print the datalist written."""
    from contextloss_monai.data import prepare
    from contextloss_monai.data.prepare import folder as generic

    parser = argparse.ArgumentParser(prog="contextloss prepare", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="dataset", required=True, metavar="{roads,hrf,vessap,cld,folder}")
    roads = _converter(commands, "roads", "Massachusetts Roads", "extracted archive (the folder holding train/ valid/ test/ or tiff/)")
    roads.add_argument("--max-white", type=float, default=0.04, help="largest share of white pixels kept (default 0.04)")
    hrf = _converter(commands, "hrf", "HRF fundus database", "extracted all.zip (the folder holding images/, manual1/, mask/)")
    hrf.add_argument("--n-test-per-group", type=int, default=3)
    vessap = _converter(commands, "vessap", "VesSAP annotated volumes", "folder holding the volumes")
    vessap.add_argument("--channel-glob", nargs="+", default=list(prepare.VESSAP_DEFAULTS["channel_globs"]), help="one pattern per channel")
    vessap.add_argument("--label-glob", default=prepare.VESSAP_DEFAULTS["label_glob"])
    vessap.add_argument("--n-test", type=int, default=prepare.VESSAP_DEFAULTS["n_test"])
    vessap.add_argument("--spacing", type=float, nargs=3, default=None, help="voxel size in mm (default: NIfTI header)")
    cld = _converter(commands, "cld", "bone cement line volumes", "folder holding the volumes")
    cld.add_argument("--image-glob", default=prepare.CLD_DEFAULTS["image_glob"])
    cld.add_argument("--label-glob", default=prepare.CLD_DEFAULTS["label_glob"])
    cld.add_argument("--n-test", type=int, default=prepare.CLD_DEFAULTS["n_test"])
    folder = commands.add_parser("folder", help="any folder of images, labels and masks", description=generic.__doc__.split("\n\n")[0],
                                 epilog=generic.__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    folder.add_argument("--images", required=True, help="folder or glob pattern of the images")
    folder.add_argument("--labels", required=True, help="folder or glob pattern of the labels")
    folder.add_argument("--masks", default=None, help="folder or glob pattern of the field-of-view masks (optional)")
    for kind in ("image", "label", "mask"):
        folder.add_argument(f"--{kind}-suffix", nargs="+", default=[], metavar="TEXT", help=f"name endings removed from the {kind} files' names to get the case id")
    folder.add_argument("--test-ids", nargs="+", default=None, metavar="ID", help="the test cases, by case id")
    folder.add_argument("--test-glob", nargs="+", default=None, metavar="PATTERN", help="the test cases, by glob patterns over the case ids")
    folder.add_argument("--test-fraction", type=float, default=None, help="the test cases, a seeded random share (e.g. 0.2)")
    folder.add_argument("--threshold", type=float, default=None, help="labels with more than two values: foreground above this value")
    folder.add_argument("--foreground-values", type=float, nargs="+", default=None, help="labels with more than two values: these values are foreground")
    folder.add_argument("--spacing", type=float, nargs="+", default=None, help="voxel size per spatial axis (default: the NIfTI header, else 1)")
    folder.add_argument("--channels", nargs="+", default=None, help="names of the image channels (default: R G B for colour pictures)")
    folder.add_argument("--structure", default="foreground", help="what the foreground is, e.g. vessel (dataset.json's label 1)")
    folder.add_argument("--name", default=None, help="the dataset's name (default: the --out folder's name)")
    folder.add_argument("--skip-unpaired", action="store_true", help="leave out files without a partner (reported) instead of refusing")
    folder.add_argument("--out", required=True, help="dataset folder to create")
    folder.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (default 5)")
    folder.add_argument("--seed", type=int, default=0, help="seed of the folds and of --test-fraction")
    folder.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    args = parser.parse_args(argv)

    options = {
        "roads": lambda: (prepare.prepare_roads, {"max_white": args.max_white}),
        "hrf": lambda: (prepare.prepare_hrf, {"n_test_per_group": args.n_test_per_group}),
        "vessap": lambda: (prepare.prepare_vessap, {"channel_globs": args.channel_glob, "label_glob": args.label_glob,
                                                    "n_test": args.n_test, "spacing": args.spacing}),
        "cld": lambda: (prepare.prepare_cld, {"image_glob": args.image_glob, "label_glob": args.label_glob, "n_test": args.n_test}),
    }
    start = time.perf_counter()  # bad input raises: contextloss prints it in one line (exit 2), nothing half-written
    common = {"n_folds": args.folds, "seed": args.seed, "overwrite": args.overwrite}
    if args.dataset == "folder":
        datalist = prepare.prepare_folder(
            args.images, args.labels, args.out, masks=args.masks, image_suffix=args.image_suffix, label_suffix=args.label_suffix,
            mask_suffix=args.mask_suffix, test_ids=args.test_ids, test_glob=args.test_glob, test_fraction=args.test_fraction,
            threshold=args.threshold, foreground_values=args.foreground_values, spacing=args.spacing, channels=args.channels,
            structure=args.structure, name=args.name, skip_unpaired=args.skip_unpaired, **common)
    else:
        convert, extra = options[args.dataset]()
        datalist = convert(args.source, args.out, **common, **extra)
    print(f"wrote {datalist} in {time.perf_counter() - start:.1f} s")
    return 0
