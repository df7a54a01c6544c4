"""Command line of the nnU-Net plug-in: ``contextloss nnunet <command> ...`` (or ``python -m contextloss_monai.nnunet``).

It lives beside :mod:`contextloss_monai.nnunet` rather than in it, so that its help shows without nnU-Net
installed; every command imports the plug-in, which names the extra to install when nnU-Net is missing.

Commands:
    trainer-path   print the folder for nnU-Net's ``nnUNet_extTrainer`` (then ``nnUNetv2_train ... -tr nnUNetTrainerCLoss``)
    trainers       list the trainers and what they train with
    train          nnU-Net's nnUNetv2_train (same arguments) that also finds this package's trainers (-tr)
    predict        nnU-Net's nnUNetv2_predict (same arguments) that also finds this package's trainers
    convert        a dataset folder of this project -> ``nnUNet_raw/DatasetNNN_Name`` (+ ``splits_final.json``)
    postprocess    pretrained + fine-tuned prediction folders -> post-processed folder (Algorithm 2)
    evaluate       prediction folder vs ``labelsTs`` -> ``metrics.csv`` + ``summary.json`` (the bundles' report)
"""

from __future__ import annotations

import argparse
import json
import sys


def _size(text: str) -> list[int] | None:
    """``64`` or ``64,64`` or ``[64,64]`` -> a list; ``none`` -> None."""
    text = text.strip().strip("[]")
    if text.lower() in ("", "none", "null"):
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas (e.g. 64,64) or none, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("train", "predict"):  # nnU-Net parses its own arguments
        from contextloss_monai.nnunet.discovery import run_nnunet_command

        return run_nnunet_command(argv[0], argv[1:])
    parser = argparse.ArgumentParser(prog="contextloss nnunet", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("trainer-path", help="folder for nnUNet_extTrainer")
    commands.add_parser("trainers", help="list the trainers")
    for name in ("train", "predict"):  # parsed by nnU-Net itself (see the dispatch above)
        commands.add_parser(name, help=f"nnUNetv2_{name} with this package's trainers (its arguments follow)")
    convert = commands.add_parser("convert", help="dataset folder -> nnU-Net raw dataset")
    convert.add_argument("dataset_dir")
    convert.add_argument("--nnunet-raw", required=True, help="nnU-Net's nnUNet_raw folder")
    convert.add_argument("--id", type=int, required=True, dest="dataset_id", help="dataset id 1..999")
    convert.add_argument("--name", default=None, help="dataset name (default: dataset.json's name)")
    convert.add_argument("--nnunet-preprocessed", default=None, help="where splits_final.json goes (default: $nnUNet_preprocessed)")
    convert.add_argument("--overwrite", action="store_true")
    post = commands.add_parser("postprocess", help="topological post-processing of a prediction folder")
    post.add_argument("--finetuned", required=True)
    post.add_argument("--pretrained", required=True)
    post.add_argument("--out", required=True)
    post.add_argument("--n-classes", type=int, default=2)
    post.add_argument("--connectivity", type=int, default=None)
    evaluate = commands.add_parser("evaluate", help="topology metrics of a prediction folder")
    evaluate.add_argument("--pred", required=True)
    evaluate.add_argument("--labels", required=True)
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--n-classes", type=int, default=2)
    evaluate.add_argument("--betti-patch-size", type=_size, default=None)
    evaluate.add_argument("--e0gt-patch-size", type=_size, default=None)
    evaluate.add_argument("--skeleton-patch-size", type=_size, default=None)
    evaluate.add_argument("--betti-slice-axis", type=int, default=None)
    evaluate.add_argument("--cache-dir", default=None)
    evaluate.add_argument("--num-workers", type=int, default=None)
    args = parser.parse_args(argv)

    from contextloss_monai import nnunet

    if args.command == "trainer-path":
        print(nnunet.trainer_path())
    elif args.command == "trainers":
        for name, cls in nnunet.TRAINERS.items():
            print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
    elif args.command == "convert":
        print(nnunet.convert_dataset_folder(args.dataset_dir, args.nnunet_raw, args.dataset_id, args.name,
                                            args.nnunet_preprocessed, overwrite=args.overwrite))
    elif args.command == "postprocess":
        written = nnunet.postprocess_prediction_folder(args.finetuned, args.pretrained, args.out, args.n_classes, args.connectivity)
        print(f"{len(written)} post-processed predictions in {args.out}")
    else:
        summary = nnunet.evaluate_prediction_folder(
            args.pred, args.labels, args.out, n_classes=args.n_classes, betti_patch_size=args.betti_patch_size,
            e0gt_patch_size=args.e0gt_patch_size, skeleton_patch_size=args.skeleton_patch_size,
            betti_slice_axis=args.betti_slice_axis, cache_dir=args.cache_dir, num_workers=args.num_workers,
        )
        print(json.dumps(summary, indent=2))
    return 0
