"""``contextloss retina-fov``: a real fundus photograph through the ``hrf_retina_2d`` bundle, with and without
its field of view.

Pretrains the bundle's DynUNet (Dice & CE) on the synthetic retina, then predicts scikit-image's
``data.retina()`` (a 1411² RGB fundus photograph that ships with scikit-image) twice through the bundle's
``configs/inference.yaml``: as before field-of-view masks existed (the whole image counts), and with a field of
view derived from the photograph (``fov_threshold`` / ``fov_margin``: the pixels brighter than the threshold,
shrunk by the margin, which drops the dark corners and the bright rim of the aperture). Prints and writes the
predicted foreground outside the field of view for both (``summary.json``) and a PNG of the photograph and the
two predictions (``retina_fov.png``). Everything goes to one output folder: the rendered bundle, the synthetic
data, the run (model, logs) and the photograph as a one-image dataset.

Example:
    contextloss retina-fov --out outputs/retina_fov        # a few minutes on a 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

BUNDLE = "hrf_retina_2d"
PHOTO_CASE = "skimage_retina"


def write_photo_dataset(folder: Path) -> Path:
    """scikit-image's ``data.retina()`` as a dataset folder of one test image and no mask."""
    from skimage import data

    from contextloss_monai.data.dataset_folder import save_nifti, write_datalist

    if not (folder / "dataset.json").is_file():
        save_nifti(data.retina(), folder / "imagesTs" / f"{PHOTO_CASE}.nii.gz", spacing=(1.0, 1.0))
        write_datalist(folder, training=[], test=[{"image": f"imagesTs/{PHOTO_CASE}.nii.gz"}], name="skimage retina",
                       description="scikit-image data.retina(), a fundus photograph, for inference only")
    return folder


def plot_fov_figure(photo: np.ndarray, fov: np.ndarray, before: np.ndarray, after: np.ndarray, path: Path, title: str) -> Path:
    """The photograph with the field of view's outline, and the two predictions: foreground inside white,
    outside red."""
    from skimage.segmentation import find_boundaries

    from contextloss_monai.experiment.figures import _agg, _save_figure

    plt = _agg()
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    outline = find_boundaries(fov, mode="inner")
    shown = photo.copy()
    shown[outline] = (255, 255, 0)
    axes[0].imshow(shown)
    axes[0].set_title("photograph, field of view (yellow)")
    for ax, pred, name in ((axes[1], before, "without the field of view"), (axes[2], after, "with the field of view")):
        rgb = np.zeros(pred.shape + (3,))
        rgb[pred & fov] = 1.0
        rgb[pred & ~fov] = (1.0, 0.15, 0.15)
        rgb[outline & ~pred] = (0.35, 0.35, 0.0)
        ax.imshow(rgb)
        ax.set_title(f"{name}: {int((pred & ~fov).sum())} px outside (red)")
    for ax in axes:
        ax.set_axis_off()
    return _save_figure(fig, path, title, dpi=80)


def main(argv: list[str] | None = None) -> int:
    from contextloss_monai.bundle.render import bundle_folder
    from contextloss_monai.data.synthetic import write_synthetic_dataset
    from contextloss_monai.experiment import PRETRAIN_PATIENCE, device_override
    from contextloss_monai.experiment.runner import pretrain, run_stage
    from contextloss_monai.layout import RunLayout
    from contextloss_monai.transforms import IntensityFieldOfView
    from contextloss_monai.utils import read_csv_rows, write_text_atomic

    parser = argparse.ArgumentParser(prog="contextloss retina-fov", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/retina_fov", help="output folder (default: outputs/retina_fov)")
    parser.add_argument("--epochs", type=int, default=60, help="the most pretraining epochs on the synthetic retina (default: 60)")
    parser.add_argument("--threshold", type=float, default=10.0, help="fov_threshold: mean intensity (0-255) above which a pixel is inside (default: 10)")
    parser.add_argument("--margin", type=int, default=8, help="fov_margin: pixels the field of view is shrunk by (default: 8)")
    parser.add_argument("--device", default=None, help="cuda, cpu... (default: CUDA when available)")
    parser.add_argument("--verbose", action="store_true", help="the stages' log lines on the terminal too (always in the run's logs/)")
    args = parser.parse_args(argv)
    if args.threshold < 0 or args.margin < 0:
        raise ValueError(f"--threshold and --margin must be >= 0, got {args.threshold} and {args.margin}.")
    device = device_override(args.device)

    start = time.perf_counter()
    out = Path(args.out).absolute()
    bundle = bundle_folder(BUNDLE, out)
    data, run, photo_dir = out / "data", out / "run", write_photo_dataset(out / "photo")
    if not (data / "dataset.json").is_file():
        write_synthetic_dataset("retina", data, seed=0, overwrite=True)
    model = pretrain(bundle, run, args.epochs, verbose=args.verbose, dataset_dir=str(data), pretrain_patience=PRETRAIN_PATIENCE, **device)

    settings = {"without_fov": {}, "with_fov": {"fov_threshold": args.threshold, "fov_margin": args.margin}}
    predictions = {}
    for name, fov_settings in settings.items():
        folder = out / name
        prediction = folder / f"{PHOTO_CASE}_seg.nii.gz"
        if not prediction.is_file():
            run_stage(bundle, ["inference"], run, log_name=f"inference_{name}", verbose=args.verbose, dataset_dir=str(photo_dir),
                      model_path=str(model), output_dir=str(folder), **fov_settings, **device)
        predictions[name] = prediction

    import nibabel as nib
    from skimage import data as skimage_data

    photo = skimage_data.retina()
    fov = IntensityFieldOfView(args.threshold, args.margin)(np.moveaxis(photo, -1, 0))[0] > 0
    before, after = (np.asanyarray(nib.load(predictions[n]).dataobj).astype(bool) for n in settings)
    counts = {name: {"foreground_inside": int((pred & fov).sum()), "foreground_outside": int((pred & ~fov).sum())}
              for name, pred in zip(settings, (before, after))}
    figure = plot_fov_figure(photo, fov, before, after, out / "retina_fov.png",
                             title=f"hrf_retina_2d pretrained on the synthetic retina only, on skimage.data.retina(); "
                                   f"field of view: mean intensity > {args.threshold:g}, less {args.margin} px")
    summary = {
        "command": "contextloss retina-fov " + " ".join(argv if argv is not None else []),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores" if "cpu" in device["device"] else device["device"],
        "image": "skimage.data.retina() (1411 x 1411 RGB)",
        "field_of_view": {"threshold": args.threshold, "margin": args.margin, "pixels_inside": int(fov.sum()), "pixels": int(fov.size)},
        "pretraining_epochs": len(read_csv_rows(RunLayout(run).training_log(RunLayout.PRETRAIN_STAGE))),
        "predictions": counts,
        "seconds": round(time.perf_counter() - start),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    for name in settings:
        print(f"{name}: {counts[name]['foreground_outside']} foreground pixels outside the field of view, "
              f"{counts[name]['foreground_inside']} inside")
    print(f"figure: {figure}\nsummary: {out / 'summary.json'} ({summary['seconds']} s)")
    return 0
