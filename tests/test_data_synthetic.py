"""Synthetic generators and the dataset folder they write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from contextloss_monai.data import load_datalist
from contextloss_monai.data.synthetic import GENERATORS, make_roads, write_synthetic_dataset
from contextloss_monai.topology import betti_numbers

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"roads": 96, "retina": 96, "vessels3d": 32, "sheets3d": 32}
CHANNELS = {"roads": 3, "retina": 3, "vessels3d": 2, "sheets3d": 1}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_seeded_and_well_formed(kind):
    a, b, c = (GENERATORS[kind](size=SIZES[kind], seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)
    spatial = a.label.shape
    assert len(spatial) == (2 if kind in ("roads", "retina") else 3)
    assert a.image.shape == spatial + (CHANNELS[kind],)
    assert a.image.dtype == (np.uint8 if len(spatial) == 2 else np.float32)
    assert a.label.dtype == np.uint8 and set(np.unique(a.label)) == {0, 1}
    assert len(a.spacing) == len(spatial)
    assert a.metadata["kind"] == kind and a.metadata["n_hard"] >= 2
    assert len(a.metadata["hard_places"]) == a.metadata["n_hard"]
    assert a.metadata["label_components"] == betti_numbers(a.label)[0]


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_hard_places_lose_contrast(kind):
    """At every hard place the label stands out from its surroundings far less than it typically does where it
    is visible (median contrast everywhere but the hard places: on roads the dirt roads and faint tracks pull a
    mean down, the typical road is paved)."""
    sample = GENERATORS[kind](size=SIZES[kind] * 2, seed=11)
    image = sample.image.astype(np.float64).mean(-1)
    label = sample.label.astype(bool)
    inside = sample.mask.astype(bool) if sample.mask is not None else np.ones_like(label)
    grids = np.indices(label.shape)
    places = [(centre, sum((g - c) ** 2 for g, c in zip(grids, centre)) <= (0.8 * radius) ** 2)
              for *centre, radius in sample.metadata["hard_places"]]
    visible = inside & ~np.logical_or.reduce([near for _, near in places])
    overall = abs(np.median(image[label & visible]) - np.median(image[~label & visible]))
    for centre, near in places:
        if (near & label).sum() < 3 or (near & ~label & inside).sum() < 3:
            continue
        local = abs(image[near & label].mean() - image[near & ~label & inside].mean())
        assert local < 0.5 * overall, (centre, local, overall)


@pytest.mark.parametrize("seed", range(5))
def test_road_network_is_one_component_with_loops_or_junctions(seed):
    sample = make_roads(size=128, seed=seed, nodata=False)
    assert betti_numbers(sample.label)[0] == 1
    assert sample.metadata["n_roads"] >= 4
    assert not (sample.image == 255).all(-1).any()  # only no-data is white


@pytest.mark.parametrize("seed", range(4))
def test_road_grid_has_loops_and_occlusions_cut_the_road_in_the_image_only(seed):
    """Roads as hard as the paper's: a street grid (one component, loops), and at the occlusions the label runs on
    while the image shows no road colour there — a pixel-wise road-colour detector breaks the road."""
    sample = make_roads(size=256, seed=seed, nodata=False)
    label = sample.label.astype(bool)
    beta0, beta1 = betti_numbers(label)[:2]
    assert beta0 == 1 and beta1 >= 2  # blocks: loops a broken road turns into a β1 error
    brightness = sample.image.astype(np.float64).mean(-1)
    grids = np.indices(label.shape)
    hidden = np.zeros_like(label)
    for row, col, radius in sample.metadata["hard_places"]:
        hidden |= (grids[0] - row) ** 2 + (grids[1] - col) ** 2 <= (0.7 * radius) ** 2
    assert (hidden & label).sum() > 20  # the label runs on under the occluders
    # a pixel-wise detector: brighter than half way between the typical road and the typical ground
    road_like = brightness > (np.median(brightness[label]) + np.median(brightness[~label])) / 2
    assert road_like[label & ~hidden].mean() > 0.5  # dirt roads and faint tracks are darker
    assert road_like[label & hidden].mean() < 0.1, "occluded road pixels still look like road"
    assert betti_numbers(label & road_like)[0] > beta0  # the detector splits the network


def test_road_nodata_patch_is_white_and_unlabelled():
    sample = make_roads(size=128, seed=2, nodata=True)
    white = (sample.image == 255).all(-1)
    assert 0.004 < white.mean() < 0.04
    assert white.mean() == pytest.approx(sample.metadata["nodata_fraction"])
    assert not sample.label[white].any()


@pytest.mark.parametrize("kind", ["retina", "vessels3d"])
def test_trees_and_networks_are_connected(kind):
    for seed in range(3):
        sample = GENERATORS[kind](size=SIZES[kind] * 2, seed=seed)
        betti = betti_numbers(sample.label)
        assert betti[0] == 1
        if kind == "vessels3d":
            assert betti[1] >= 1  # the loop-closing edges
    retina = GENERATORS["retina"](size=128, seed=0)
    assert not retina.label[retina.mask == 0].any()  # vessels only inside the field of view


def test_thin_retina_vessels_fade_in_and_out_in_the_image_not_in_the_label(monkeypatch):
    """HRF's way of being hard: thin vessels fade in and out along their course, so a pixel-wise model finds them
    in pieces, while the label runs on. Against the same seed without the fading: same label, the image
    changed only on and next to thin vessels, and there at many places by most of the vessel's contrast."""
    from scipy import ndimage

    from contextloss_monai.data.synthetic import retina

    faded = retina.make_retina(size=256, seed=7)
    monkeypatch.setattr(retina, "THIN_FLICKER", (1.0, 0.0))
    steady = retina.make_retina(size=256, seed=7)
    np.testing.assert_array_equal(faded.label, steady.label)
    label = steady.label.astype(bool)
    difference = np.abs(faded.image.astype(float) - steady.image.astype(float)).mean(-1)
    assert (difference[~ndimage.binary_dilation(label, iterations=3)] <= 1).all()  # nothing but the vessels changes
    darkening = ndimage.median_filter(steady.image.astype(float).mean(-1), size=9) - steady.image.astype(float).mean(-1)
    depth = ndimage.distance_transform_edt(label)
    thin = label & (ndimage.maximum_filter(depth, size=5) <= 1.5) & (darkening > 2)  # visible vessels 2–3 px wide
    faded_share = difference[thin] / darkening[thin]
    assert thin.sum() > 200 and (faded_share > 0.5).mean() > 0.04, "thin vessels do not fade"
    assert (difference[depth >= 2] > 1).mean() < 0.1  # the main vessels keep their contrast


def test_cement_layers_fade_in_the_image_not_in_the_label(monkeypatch):
    """CLD's way of being hard: cement lines are only partly visible. Against the same seed without the fading:
    same label, the image changed only on and next to the layers, and there a good share of the layers' centre
    voxels lose most of their contrast while others keep it."""
    from scipy import ndimage

    from contextloss_monai.data.synthetic import sheets3d

    faded = sheets3d.make_sheets3d(size=48, seed=3)
    monkeypatch.setattr(sheets3d, "LAYER_FADING", (1.0, 0.0))
    steady = sheets3d.make_sheets3d(size=48, seed=3)
    np.testing.assert_array_equal(faded.label, steady.label)
    label = steady.label.astype(bool)
    difference = np.abs(faded.image - steady.image)[..., 0]
    assert (difference[~ndimage.binary_dilation(label, iterations=4)] < 0.01).all()  # nothing but the layers changes
    contrast = ndimage.gaussian_filter(label.astype(np.float32), sigma=1.2) * 0.35  # the layers' unfaded contrast
    centre = label & (ndimage.distance_transform_edt(label) >= 1)
    lost = difference[centre] / contrast[centre]
    assert 0.3 < (lost > 0.7).mean() < 0.9, "layers do not fade over a good share of their course"
    assert (lost < 0.1).mean() > 0.04, "no stretch of a layer keeps its contrast"


@pytest.mark.parametrize("kind, bad", [("roads", 16), ("retina", 0), ("vessels3d", 8), ("sheets3d", 2.5)])
def test_bad_size(kind, bad):
    with pytest.raises(ValueError, match="size"):
        GENERATORS[kind](size=bad, seed=0)


def test_dataset_folder(tmp_path):
    out = tmp_path / "retina"
    datalist = write_synthetic_dataset("retina", out, n_train=7, n_test=2, size=64, seed=1, progress=False)
    content = json.loads(datalist.read_text())
    assert content["numTraining"] == 7 and content["numTest"] == 2
    training = load_decathlon_datalist(str(datalist), True, "training", base_dir=str(out))
    test = load_decathlon_datalist(str(datalist), True, "test", base_dir=str(out))
    for item in training + test:
        for key in ("image", "label", "mask"):
            assert Path(item[key]).is_file()
    folds = [item["fold"] for item in training]
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    for fold in range(5):  # train and val of each fold partition the training list
        train, val = load_datalist(out, "train", fold), load_datalist(out, "val", fold)
        assert len(train) + len(val) == 7 and not {x["image"] for x in train} & {x["image"] for x in val}
    assert len(load_datalist(out, "val")) == 2  # no fold: validate on the test list
    image = nib.load(training[0]["image"])
    assert image.shape == (64, 64, 3) and image.get_data_dtype() == np.uint8
    label = nib.load(training[0]["label"])
    assert label.shape == (64, 64) and set(np.unique(np.asanyarray(label.dataobj))) <= {0, 1}
    np.testing.assert_allclose(label.header.get_zooms(), (1.0, 1.0))
    metadata = json.loads((out / "synthetic_metadata.json").read_text())
    assert len(metadata) == 9 and all(m["n_hard"] >= 2 for m in metadata.values())
    # same seed, same data; a non-empty folder is refused; nothing half-written is left on failure
    again = write_synthetic_dataset("retina", tmp_path / "again", n_train=7, n_test=2, size=64, seed=1, progress=False)
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(again.parent / training[0]["image"].split("retina/")[-1]).dataobj), np.asanyarray(image.dataobj)
    )
    with pytest.raises(FileExistsError, match="not empty"):
        write_synthetic_dataset("retina", out, n_train=7, n_test=2, size=64, progress=False)
    with pytest.raises(ValueError, match="size"):
        write_synthetic_dataset("retina", tmp_path / "broken", n_train=7, n_test=2, size=16, progress=False)
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("*partial*"))
    assert not (tmp_path / "broken").exists()


def test_load_datalist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        load_datalist(tmp_path)
    out = tmp_path / "d"
    write_synthetic_dataset("sheets3d", out, n_train=5, n_test=1, size=16, progress=False)
    with pytest.raises(ValueError, match="fold 7"):
        load_datalist(out, "train", fold=7)
    with pytest.raises(ValueError, match="role"):
        load_datalist(out, "validation")
    next((out / "labelsTr").iterdir()).unlink()
    with pytest.raises(FileNotFoundError, match="missing label"):
        load_datalist(out, "training")


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_make_synthetic_cli(tmp_path, kind, capsys):
    out = tmp_path / kind
    arguments = ["--kind", kind, "--out", str(out), "--n-train", "5", "--n-test", "1", "--size", str(SIZES[kind])]
    from contextloss_monai.cli import main

    assert main(["make-synthetic", *arguments]) == 0
    items = load_datalist(out, "training")
    spatial = nib.load(items[0]["label"]).shape
    assert nib.load(items[0]["image"]).shape[: len(spatial)] == spatial
    assert main(["make-synthetic", *arguments]) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(["make-synthetic", *arguments, "--overwrite"]) == 0


def test_make_synthetic_runs_as_a_program(tmp_path):
    command = [sys.executable, "-m", "contextloss_monai", "make-synthetic", "--kind", "sheets3d", "--out", str(tmp_path / "s"),
               "--n-train", "5", "--n-test", "1", "--size", "16"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "s/dataset.json").is_file()


def test_interrupted_writes_are_cleaned_and_the_umask_is_honoured(tmp_path):
    """A writer killed outright leaves its hidden staging folder; the next write of the same folder removes
    it. The finished folder gets the umask's permissions (mkdtemp alone would make it private)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "data"
    code = (
        "import os, sys\n"
        "from contextloss_monai.data.synthetic import write_synthetic_dataset\n"
        "import contextloss_monai.data.dataset_folder as folder\n"
        "real = folder.write_case\n"
        "calls = []\n"
        "def dying(*args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        os.kill(os.getpid(), 9)\n"
        "    return real(*args, **kwargs)\n"
        "folder.write_case = dying\n"
        f"write_synthetic_dataset('roads', {str(out)!r}, n_train=5, n_test=1, size=32, progress=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9
    stale = list(tmp_path.glob(".data.*.partial"))
    assert len(stale) == 1 and not out.exists()
    previous = os.umask(0o027)
    try:
        write_synthetic_dataset("roads", out, n_train=5, n_test=1, size=32, progress=False)
    finally:
        os.umask(previous)
    assert not list(tmp_path.glob(".data.*.partial"))
    assert (out.stat().st_mode & 0o777) == 0o750
