"""The command-line frame the ``scripts/prepare_*.py`` converters share."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["converter_parser", "run_converter"]


def converter_parser(description: str, source_help: str) -> argparse.ArgumentParser:
    """A parser with the arguments every converter takes: the source folder, ``--out``, ``--folds``,
    ``--seed`` and ``--overwrite``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help=source_help)
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    return parser


def run_converter(convert: Callable[..., Path], args: argparse.Namespace, **options) -> int:
    """Run ``convert(source, out, n_folds=..., seed=..., overwrite=..., **options)``; print the datalist
    written, or the error (exit status 2) without a traceback."""
    start = time.perf_counter()
    try:
        datalist = convert(args.source, args.out, n_folds=args.folds, seed=args.seed, overwrite=args.overwrite, **options)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {datalist} in {time.perf_counter() - start:.1f} s")
    return 0
