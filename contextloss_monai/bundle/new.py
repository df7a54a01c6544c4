"""A bundle of its own for a user's dataset, rendered from the one template with values read from the data.

``contextloss bundle new NAME --data DIR`` reads the dataset folder (``dataset.json`` and the training images'
headers) and renders the template with the settings of a shipped bundle of the same dimensions (``--like``:
``roads_2d`` for 2D, ``vessap_3d`` for 3D), changed where the data differ:

* spatial dims and input channels (and their names) from the images;
* the training patch: the ``--like`` bundle's (what fits its memory), shrunk to the smallest image, a multiple
  of the network's total stride per axis, square in-plane (the augmentation rotates by 90° there);
* the metric tiles for Betti errors and e0-Gt: a quarter of the smallest image per axis in 2D (the roads
  protocol's share), whole images in 3D;
* the intensity range of 2D images (scaled to ``[0, 1]`` before normalisation) from the training images;
* ``dataset_dir``: the dataset folder itself (no synthetic default; ``--dataset_dir`` points it elsewhere).

The bundle is written to ``--out/NAME`` (default: the current folder), all or nothing, and ships no weights
or results; train it with the commands of its ``docs/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from contextloss_monai.bundle.render import bundle_values, render_files
from contextloss_monai.checks import check_plain_name
from contextloss_monai.data.dataset_folder import DATALIST_NAME, load_datalist
from contextloss_monai.utils import staging_folder, write_text_atomic

__all__ = ["dataset_bundle_values", "main", "new_bundle"]

#: the shipped bundle whose settings a new bundle starts from, per spatial dims
LIKE = {2: "roads_2d", 3: "vessap_3d"}
#: how many training images are read to find the intensity range of 2D images
_RANGE_IMAGES = 8


def _stride(values: dict) -> list[int]:
    """The network's total stride per axis (the product of its strides)."""
    return [math.prod(s[axis] for s in values["strides"]) for axis in range(values["spatial_dims"])]


def dataset_bundle_values(name: str, dataset_dir: str | os.PathLike, like: str | None = None) -> dict:
    """The template values of a bundle called ``name`` for the dataset folder ``dataset_dir``.

    Raises:
        FileNotFoundError: when ``dataset_dir`` has no ``dataset.json`` or an image is missing.
        ValueError: for a ``like`` bundle of other dimensions, or images smaller than the network's stride.
    """
    import nibabel as nib
    import numpy as np

    dataset_dir = Path(dataset_dir).absolute()
    if not (dataset_dir / DATALIST_NAME).is_file():
        raise FileNotFoundError(f"data {dataset_dir} has no {DATALIST_NAME}: write one with contextloss prepare folder (or make-synthetic).")
    content = json.loads((dataset_dir / DATALIST_NAME).read_text())
    items = load_datalist(dataset_dir, "training")
    labels = [nib.load(item["label"]).shape for item in items]
    images = [nib.load(item["image"]).shape for item in items]
    dims = len(labels[0])
    shipped = bundle_values()
    like = like or LIKE.get(dims)
    if like not in shipped:
        raise ValueError(f"like must be one of the bundles {sorted(shipped)}, got {like!r}.")
    values = dict(shipped[like])
    if values["spatial_dims"] != dims:
        raise ValueError(f"like bundle {like} is {values['spatial_dims']}D but the dataset's labels are {dims}D; choose a {dims}D bundle.")
    smallest = [min(shape[axis] for shape in labels) for axis in range(dims)]
    stride = _stride(values)
    patch = [min(p, (s // k) * k) for p, s, k in zip(values["patch_size"], smallest, stride)]
    patch[:2] = [min(patch[:2])] * 2  # square in-plane: the training augmentation rotates by 90° there
    if min(patch) == 0:
        raise ValueError(f"data {dataset_dir}: the smallest image is {smallest}, smaller than the network's stride {stride} on an axis.")
    channels = images[0][dims] if len(images[0]) > dims else 1
    names = list(content.get("channels", {}).values()) or [f"channel{i}" for i in range(channels)]
    structure = str(content.get("labels", {}).get("1", "foreground"))
    values.update(
        name=name, title=name, like=like, own_dataset=str(dataset_dir), structure=structure, label_name=structure,
        task=f"Topology-preserving {structure} segmentation in {dims}D images ({content.get('name', dataset_dir.name)})",
        dataset_phrase=f"dataset {content.get('name', dataset_dir.name)}",
        data_source=f"{len(items)} training / {content.get('numTest', '?')} test cases of the dataset {content.get('name', dataset_dir.name)}",
        in_channels=channels, channels=names[:channels], modality="image",
        image_classes=f"{channels}-channel image ({', '.join(names[:channels])}), channel-first after loading",
        channel_comment="channels stored channel-last, or one channel that gets a channel axis",
        patch_size=patch, patch_comment=f"the smallest image is {smallest}; at most the {like} bundle's {values['patch_size']}",
        export_shape="[" + ",".join(str(v) for v in [1, channels, *patch]) + "]",
        results=None, paper_figures=None, synthetic_kind=None, synthetic_description=None, real_data=None,
        prepare_dataset=None, prepare_arguments=None, real_data_settings=None,
    )
    if dims == 2:
        tile = [max(16, s // 4) for s in smallest]
        values.update(betti_patch_size=tile, e0gt_patch_size=tile, skeleton_patch_size=None,
                      protocol=f"Betti errors and e0-Gt on {'×'.join(map(str, tile))} tiles (a quarter of the smallest image), clDice and AGS on the whole image",
                      protocol_comment="# Betti errors and e0-Gt on tiles of a quarter of the smallest image (the roads protocol's share), clDice and AGS whole")
        sample = [np.asanyarray(nib.load(item["image"]).dataobj) for item in items[:_RANGE_IMAGES]]
        low, high = float(min(a.min() for a in sample)), float(max(a.max() for a in sample))
        values["intensity_range"] = [low, high if high > low else low + 1.0]
    else:
        values.update(betti_patch_size=None, e0gt_patch_size=None, skeleton_patch_size=None,
                      protocol="every metric on the whole volume",
                      protocol_comment="# every metric on the whole volume; set betti_patch_size / e0gt_patch_size for tiles")
    return values


def new_bundle(name: str, dataset_dir: str | os.PathLike, out_dir: str | os.PathLike = ".", like: str | None = None,
               overwrite: bool = False) -> Path:
    """Render the bundle ``name`` for ``dataset_dir`` into ``out_dir/name`` (all or nothing); return its folder.

    Raises:
        FileExistsError: when ``out_dir/name`` exists and is not empty, without ``overwrite``.
        FileNotFoundError, ValueError: as :func:`dataset_bundle_values`, and for a ``name`` that is not a plain name.
    """
    check_plain_name(name, "name")
    files = render_files(dataset_bundle_values(name, dataset_dir, like))
    target = Path(out_dir) / name
    with staging_folder(target, overwrite=overwrite) as staging:
        for relative, text in files.items():
            write_text_atomic(staging / relative, text)
    return target


def main(argv: list[str] | None = None) -> int:
    """``contextloss bundle new NAME --data DIR [--like BUNDLE] [--out FOLDER] [--overwrite]``."""
    parser = argparse.ArgumentParser(prog="contextloss bundle", description="Bundles of your own.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="a bundle for a dataset folder", description=__doc__.split("\n\n")[0],
                              epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    new.add_argument("name", help="the bundle's name (its folder's name)")
    new.add_argument("--data", required=True, help="the dataset folder (dataset.json), e.g. from contextloss prepare folder")
    new.add_argument("--like", default=None, help=f"the shipped bundle whose settings it starts from (default: {LIKE[2]} for 2D, {LIKE[3]} for 3D)")
    new.add_argument("--out", default=".", help="the folder the bundle goes into (default: the current folder)")
    new.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder of that name")
    args = parser.parse_args(argv)
    folder = new_bundle(args.name, args.data, args.out, args.like, args.overwrite)
    print(f"{folder}\ntrain it: cd {folder} && python -m monai.bundle run --config_file configs/train.yaml (see docs/README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
