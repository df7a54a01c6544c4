"""Run folders and the naming rule of their method keys: the check the experiment runner makes before it
uses a fold folder, and the migration of folders named by the earlier rule.

The earlier rule named a ContextLoss key's reading unless it was ``mask_mean`` (``context_g0.2`` was the
``mask_mean`` run, ``context_g0.2_hadamard`` the default's); the rule of :mod:`contextloss_monai.method`
names it unless it is the default, ``hadamard`` (``context_g0.2`` and ``context_g0.2_mask_mean``). The same
key meaning two runs, a folder without the record ``logs/naming.json`` is refused until it is migrated::

    contextloss migrate-run outputs/benchmark_roads_2d
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from contextloss_monai.layout import RunLayout
from contextloss_monai.method import CONTEXT_LOSS_NAMES, Method
from contextloss_monai.utils import read_csv_rows, write_csv_rows, write_text_atomic

__all__ = ["check_naming", "migrate_run", "record_naming"]

#: a ContextLoss key of the earlier rule: ``<loss>_g<γ>`` (mask_mean) or ``<loss>_g<γ>_<reading>``
_EARLIER_KEY = re.compile(rf"^(?P<loss>{'|'.join(sorted(CONTEXT_LOSS_NAMES, key=len, reverse=True))})_g(?P<gamma>[0-9.e+-]+?)(?:_(?P<reading>hadamard|mask_mean))?$")
_RESULTS_CSV = "results.csv"


def record_naming(layout: RunLayout) -> RunLayout:
    """Write ``logs/naming.json`` (the naming rule :attr:`RunLayout.NAMING_RULE`) when it is missing; return ``layout``."""
    if not layout.naming_record.is_file():
        write_text_atomic(layout.naming_record, json.dumps({"naming_rule": RunLayout.NAMING_RULE}) + "\n")
    return layout


def check_naming(layout: RunLayout) -> RunLayout:
    """``layout`` after checking that its files follow the current naming rule (recorded for a new folder).

    Raises:
        ValueError: naming the folder and the command that migrates it, when it holds run outputs without the
            record of the current rule.
    """
    if layout.naming_record.is_file():
        rule = json.loads(layout.naming_record.read_text()).get("naming_rule")
        if rule != RunLayout.NAMING_RULE:
            raise ValueError(f"{layout.naming_record} records naming rule {rule!r}; this version reads rule {RunLayout.NAMING_RULE}.")
        return layout
    if layout.has_outputs():
        raise ValueError(f"{layout.root} was written by contextloss-monai before 0.3.0, whose run keys named CLoss's reading the other way "
                         f"round (context_g0.2 was the mask_mean run); rename its files once with: contextloss migrate-run {layout.root.parent}")
    return record_naming(layout)


def _current_key(earlier: str) -> str:
    """The key of the current rule for a key of the earlier rule (other keys are unchanged)."""
    match = _EARLIER_KEY.match(earlier)
    if match is None:
        return earlier
    return Method(match["loss"], float(match["gamma"]), match["reading"] or "mask_mean").key


def _renames(layout: RunLayout) -> list[tuple[Path, Path]]:
    """``(old, new)`` for every model, checkpoint, log folder and evaluation folder whose key changes."""
    moves = []
    for folder, pattern in ((layout.models_dir, r"^model_(?P<key>.+)\.pt$"),
                            (layout.models_dir, r"^finetune_(?P<key>.+)_checkpoint_epoch=\d+\.pt$"),
                            (layout.root / "logs", r"^finetune_(?P<key>.+)$"),
                            (layout.root / "eval", r"^(?P<key>.+)$")):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = re.match(pattern, path.name)
            if match is None or (new := _current_key(match["key"])) == match["key"]:
                continue
            start, end = match.span("key")
            moves.append((path, path.with_name(path.name[:start] + new + path.name[end:])))
    return moves


def migrate_run(out_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Rename the files of an experiment folder (``out_dir/fold<N>/`` and its ``results.csv``), or of one run
    folder, from the earlier naming rule to the current one, and record the rule. Names are swapped through
    temporary names, so ``context_g0.2`` (mask_mean) and ``context_g0.2_hadamard`` trade places safely; a
    folder that already records the current rule is left as it is.

    Returns:
        the ``(old, new)`` paths renamed.

    Raises:
        FileNotFoundError: when ``out_dir`` is not a folder.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"out_dir {out_dir} is not a folder.")
    layouts = [RunLayout(p) for p in sorted(out_dir.glob("fold*")) if p.is_dir()] or [RunLayout(out_dir)]
    earlier = [layout for layout in layouts if not layout.naming_record.is_file()]
    done = []
    for layout in earlier:
        moves = _renames(layout)
        staged = [(old, old.with_name(f".{old.name}.migrating"), new) for old, new in moves]
        for old, temporary, _ in staged:
            old.rename(temporary)
        for _, temporary, new in staged:
            temporary.rename(new)
        record_naming(layout)
        done += moves
    results = out_dir / _RESULTS_CSV
    if earlier and results.is_file():
        rows = read_csv_rows(results, ("key",))
        if any(_current_key(r["key"]) != r["key"] for r in rows):
            write_csv_rows(results, [{**r, "key": _current_key(r["key"])} for r in rows])
    return done


def main(argv: list[str] | None = None) -> int:
    """``contextloss migrate-run OUT``."""
    parser = argparse.ArgumentParser(prog="contextloss migrate-run", description="Rename the files of a run folder written before "
                                     "contextloss-monai 0.3.0 to the current method keys (context_g0.2 was the mask_mean run, "
                                     "context_g0.2_hadamard the default's; now context_g0.2_mask_mean and context_g0.2).")
    parser.add_argument("out", help="an experiment folder (holding fold<N>/) or one run folder")
    args = parser.parse_args(argv)
    moves = migrate_run(args.out)  # no such folder: contextloss prints it in one line (exit 2)
    for old, new in moves:
        print(f"{old} -> {new.name}")
    print(f"{len(moves)} files and folders renamed; {args.out} follows naming rule {RunLayout.NAMING_RULE}")
    return 0
