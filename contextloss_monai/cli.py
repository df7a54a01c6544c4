"""``contextloss``: the one command line of the package, installed with it (``console_scripts``).

Each subcommand is a ``main(argv) -> int`` in the module that owns it; ``contextloss <command> --help`` shows its
options. ``python -m contextloss_monai`` is the same command.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

#: subcommand → (module, function, one-line help), in the order ``contextloss --help`` lists them
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("contextloss_monai.experiment.demo", "main", "ContextLoss against Dice & CE on synthetic roads, end to end (about 10 minutes on a CPU)"),
    "benchmark": ("contextloss_monai.experiment.benchmark", "main", "the paper's comparison on a bundle: pretrain, fine-tune every method, evaluate, tables"),
    "retina-fov": ("contextloss_monai.experiment.retina_fov", "main", "a real fundus photograph through hrf_retina_2d, with and without its field of view"),
    "calibrate": ("contextloss_monai.experiment.calibrate", "main", "the pretrained model on the synthetic data against the paper's nnU-Net row"),
    "make-synthetic": ("contextloss_monai.data.synthetic.cli", "main", "write a synthetic dataset folder (roads, retina, vessels3d, sheets3d)"),
    "prepare": ("contextloss_monai.data.prepare.cli", "main", "convert a public dataset (roads, hrf, vessap, cld) into a dataset folder"),
    "bundle": ("contextloss_monai.bundle.new", "main", "a bundle of your own from a dataset folder: bundle new NAME --data DIR"),
    "render-bundles": ("contextloss_monai.bundle.render", "main", "render the bundles from the package's template (or --check them)"),
    "package": ("contextloss_monai.bundle.packaging", "package_main", "zip a bundle as <name>_v<version>.zip with its SHA-256"),
    "download": ("contextloss_monai.bundle.packaging", "download_main", "download a bundle zip, verify its SHA-256, install it atomically"),
    "results-index": ("contextloss_monai.experiment.results", "results_index_main", "write the index page of a folder of result archives (docs/results)"),
    "compare-runs": ("contextloss_monai.experiment.results", "compare_runs_main", "compare two runs of one protocol image by image (an ablation's two settings)"),
    "migrate-run": ("contextloss_monai.experiment.migrate", "main", "rename a run folder written before 0.3.0 to the current method keys"),
    "bench-losses": ("contextloss_monai.benchmarks.losses", "main", "time and memory of ContextLoss against its baselines"),
    "bench-skeleton": ("contextloss_monai.benchmarks.skeleton", "main", "the soft skeleton on packed 64-pixel words against the bool map"),
    "bench-metrics": ("contextloss_monai.benchmarks.metrics", "main", "time of the topology metrics on image sizes of the paper's datasets"),
    "bench-gpu": ("contextloss_monai.benchmarks.gpu", "main", "the paper's Table 7 (seconds per fine-tuning epoch) on a GPU"),
    "mask-gradients": ("contextloss_monai.experiment.mask_gradients", "main", "where the restricted term's gradient goes: missed or false connections"),
    "toy-line-gaps": ("contextloss_monai.experiment.toy_line_gaps", "main", "a tiny U-Net closing gaps in lines with ContextLoss (one minute)"),
    "nnunet": ("contextloss_monai.nnunet_command", "main", "the nnU-Net v2 plug-in: trainers, train, predict, convert, postprocess, evaluate"),
}


def _usage() -> str:
    from contextloss_monai import __version__

    width = max(map(len, COMMANDS))
    lines = [f"usage: contextloss <command> [options]   (contextloss-monai {__version__})", "",
             "ContextLoss for topology-preserving segmentation with MONAI. Commands:", ""]
    lines += [f"  {name:<{width}}  {help}" for name, (_, _, help) in COMMANDS.items()]
    lines += ["", "contextloss <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``contextloss <command> [options]``; return its exit status: 2 for an unknown command, for bad input
    (a ``ValueError``, ``FileNotFoundError`` or ``FileExistsError``) or a missing extra (``ImportError``), printed as
    one line naming what was wrong."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from contextloss_monai import __version__

        print(__version__)
        return 0
    if argv[0] not in COMMANDS:
        print(f"contextloss: unknown command {argv[0]!r}; one of: {', '.join(COMMANDS)} (contextloss --help)", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[argv[0]]
    try:
        status = getattr(importlib.import_module(module), function)(argv[1:])
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as error:  # bad input or a missing extra: named
        print(f"contextloss {argv[0]}: error: {error}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
