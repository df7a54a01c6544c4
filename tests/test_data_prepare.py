"""Real-dataset converters, run on tiny fake archives built in each public layout."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest
import tifffile

from contextloss_monai.data import load_datalist
from contextloss_monai.data.prepare import prepare_cld, prepare_hrf, prepare_roads, prepare_vessap, white_fraction

ROOT = Path(__file__).resolve().parents[1]


def _line_label(shape, value=255, dtype=np.uint8):
    label = np.zeros(shape, dtype=dtype)
    label[shape[0] // 2, ...] = value
    return label


def _rgb(rng, shape, white=0.0):
    image = rng.integers(0, 250, size=shape + (3,), dtype=np.uint8)
    rows = int(round(white * shape[0]))
    image[:rows] = 255
    return image


def _fake_roads(root: Path, layout: str = "mnih") -> None:
    """train: 6 tiles (2 too white) + valid: 1; test: 3 tiles (1 too white) -> 5 train / 2 test kept."""
    rng = np.random.default_rng(0)
    folders = {"mnih": ("train/sat", "train/map", "valid/sat", "valid/map", "test/sat", "test/map"),
               "kaggle": ("tiff/train", "tiff/train_labels", "tiff/val", "tiff/val_labels", "tiff/test", "tiff/test_labels")}[layout]
    whites = {0: [0, 0.03, 0.1, 0, 0.5, 0], 2: [0], 4: [0, 0.2, 0.02]}
    for part, fractions in whites.items():
        sat, road_map = root / folders[part], root / folders[part + 1]
        sat.mkdir(parents=True), road_map.mkdir(parents=True)
        for i, fraction in enumerate(fractions):
            tifffile.imwrite(sat / f"{part}{i}_15.tiff", _rgb(rng, (40, 40), fraction))
            tifffile.imwrite(road_map / f"{part}{i}_15.tif", _line_label((40, 40)))


@pytest.mark.parametrize("layout", ["mnih", "kaggle"])
def test_prepare_roads(tmp_path, layout):
    _fake_roads(tmp_path / "archive" / ("mass_roads" if layout == "mnih" else ""), layout)
    datalist = prepare_roads(tmp_path / "archive", tmp_path / "out", n_folds=5, progress=False)
    content = json.loads(datalist.read_text())
    assert (content["numTraining"], content["numTest"]) == (5, 2)
    train = load_datalist(tmp_path / "out", "training")
    assert sorted(item["fold"] for item in train) == [0, 1, 2, 3, 4]
    assert all(item["white_fraction"] <= 0.04 for item in train)
    image, label = nib.load(train[0]["image"]), nib.load(train[0]["label"])
    assert image.shape == (40, 40, 3) and label.shape == (40, 40)
    assert set(np.unique(np.asanyarray(label.dataobj))) == {0, 1}  # 0 / 255 maps binarised
    np.testing.assert_allclose(label.header.get_zooms(), (1000.0, 1000.0))


def test_white_fraction():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:2] = 255
    image[2, :, 0] = 255  # only one channel white: not a no-data pixel
    assert white_fraction(image) == pytest.approx(0.2)


def test_prepare_hrf(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("images", "manual1", "mask"):
        (tmp_path / "hrf" / folder).mkdir(parents=True)
    for number in range(1, 16):
        for group in ("h", "g", "dr"):
            name = f"{number:02d}_{group}"
            extension = "JPG" if group == "dr" else "jpg"  # the archive mixes the case of the extension
            iio.imwrite(tmp_path / f"hrf/images/{name}.{extension}", _rgb(rng, (24, 32)))
            tifffile.imwrite(tmp_path / f"hrf/manual1/{name}.tif", _line_label((24, 32)))
            fov = np.zeros((24, 32, 3), np.uint8)
            fov[2:-2, 2:-2] = 255
            tifffile.imwrite(tmp_path / f"hrf/mask/{name}_mask.tif", fov)
    prepare_hrf(tmp_path / "hrf", tmp_path / "out", progress=False)
    train, test = load_datalist(tmp_path / "out", "training"), load_datalist(tmp_path / "out", "test")
    assert (len(train), len(test)) == (36, 9)
    assert sorted(Path(item["image"]).name.split(".")[0] for item in test) == sorted(
        f"{n}_{g}" for n in (13, 14, 15) for g in ("h", "g", "dr")
    )
    mask = np.asanyarray(nib.load(test[0]["mask"]).dataobj)
    assert mask.shape == (24, 32) and mask.sum() == 20 * 28


def test_prepare_vessap(tmp_path):
    for folder in ("raw", "seg"):
        (tmp_path / "vessap" / folder).mkdir(parents=True)
    affine = np.diag([0.003, 0.003, 0.006, 1.0])
    rng = np.random.default_rng(2)
    for i in range(11):
        for channel in ("C00", "C01"):
            nib.save(nib.Nifti1Image(rng.random((12, 12, 6)).astype(np.float32), affine), tmp_path / f"vessap/raw/block_{i:02d}_{channel}.nii.gz")
        nib.save(nib.Nifti1Image(_line_label((12, 12, 6), 1), affine), tmp_path / f"vessap/seg/block_{i:02d}.nii.gz")
    prepare_vessap(tmp_path / "vessap", tmp_path / "out", progress=False)
    train, test = load_datalist(tmp_path / "out", "training"), load_datalist(tmp_path / "out", "test")
    assert (len(train), len(test)) == (8, 3)
    image = nib.load(train[0]["image"])
    assert image.shape == (12, 12, 6, 2)
    np.testing.assert_allclose(image.header.get_zooms()[:3], (0.003, 0.003, 0.006), rtol=1e-6)


def test_prepare_cld_from_tiff_stacks(tmp_path):
    for folder in ("images", "labels"):
        (tmp_path / "cld" / folder).mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(17):
        tifffile.imwrite(tmp_path / f"cld/images/vol{i:02d}.tif", rng.integers(0, 65535, (5, 8, 10), dtype=np.uint16))
        label = np.zeros((5, 8, 10), np.uint8)
        label[:, 3, :] = 255
        tifffile.imwrite(tmp_path / f"cld/labels/vol{i:02d}_label.tif", label)
    prepare_cld(tmp_path / "cld", tmp_path / "out", progress=False)
    train, test = load_datalist(tmp_path / "out", "training"), load_datalist(tmp_path / "out", "test")
    assert (len(train), len(test)) == (13, 4)
    label = nib.load(test[0]["label"])
    assert label.shape == (8, 10, 5)  # pages (z) last
    assert np.asanyarray(label.dataobj)[3].all() and np.asanyarray(label.dataobj).sum() == 10 * 5
    np.testing.assert_allclose(label.header.get_zooms(), (45.6e-6,) * 3, rtol=1e-5)


def test_bad_archives(tmp_path):
    with pytest.raises(FileNotFoundError, match="root .* is not an existing folder"):
        prepare_cld(tmp_path / "nowhere", tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="Massachusetts Roads archive layout"):
        prepare_roads(tmp_path, tmp_path / "out", progress=False)
    _fake_roads(tmp_path / "roads")
    with pytest.raises(ValueError, match="no train image .* passes the white-pixel rule"):
        prepare_roads(tmp_path / "roads", tmp_path / "out", max_white=-1, progress=False)
    (tmp_path / "roads/train/map/00_15.tif").unlink()
    with pytest.raises(FileNotFoundError, match="no label file for image .*00_15.tiff"):
        prepare_roads(tmp_path / "roads", tmp_path / "out", progress=False)

    def volumes(name, label=None, image=None, n=6):
        for folder in ("images", "labels"):
            (tmp_path / name / folder).mkdir(parents=True)
        for i in range(n):
            nib.save(nib.Nifti1Image(np.zeros((6, 6, 4), np.float32), np.eye(4)), tmp_path / f"{name}/images/v{i}.nii.gz")
            nib.save(nib.Nifti1Image(_line_label((6, 6, 4), 1), np.eye(4)), tmp_path / f"{name}/labels/v{i}.nii.gz")
        if label is not None:
            nib.save(nib.Nifti1Image(label, np.eye(4)), tmp_path / f"{name}/labels/v3.nii.gz")
        if image is not None:
            (tmp_path / f"{name}/images/v3.nii.gz").write_bytes(image)
        return tmp_path / name

    with pytest.raises(ValueError, match=r"label .*v3.nii.gz must be binary \(two values\), found 3"):
        prepare_cld(volumes("multi", label=np.arange(144, dtype=np.uint8).reshape(6, 6, 4) % 3), tmp_path / "out", n_test=1, progress=False)
    with pytest.raises(ValueError, match=r"case v3: image .* has shape \(6, 6, 4\) but label .* has shape \(6, 5, 4\)"):
        prepare_cld(volumes("shape", label=np.zeros((6, 5, 4), np.uint8)), tmp_path / "out", n_test=1, progress=False)
    with pytest.raises(ValueError, match="cannot read image file .*v3.nii.gz"):
        prepare_cld(volumes("broken", image=b"not a nifti"), tmp_path / "out", n_test=1, progress=False)
    with pytest.raises(ValueError, match="match different numbers of files"):
        (tmp_path / "multi/labels/v0.nii.gz").unlink()
        prepare_cld(tmp_path / "multi", tmp_path / "out", n_test=1, progress=False)
    with pytest.raises(ValueError, match="n_test must be between 1 and 5"):
        prepare_cld(volumes("few"), tmp_path / "out", n_test=6, progress=False)
    with pytest.raises(FileNotFoundError, match="no label files match"):
        prepare_cld(volumes("glob"), tmp_path / "out", label_glob="segmentations/*", progress=False)
    # nothing half-written: no output folder, no staging folder left behind
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("*partial*"))


@pytest.mark.parametrize("dataset", ["roads", "hrf", "vessap", "cld"])
def test_prepare_command(tmp_path, dataset, capsys):
    from contextloss_monai.cli import main

    if dataset == "roads":
        _fake_roads(tmp_path / "src")
        extra = []
    elif dataset == "cld":
        for folder in ("images", "labels"):
            (tmp_path / "src" / folder).mkdir(parents=True)
        for i in range(7):
            nib.save(nib.Nifti1Image(np.zeros((6, 6, 4), np.float32), np.eye(4)), tmp_path / f"src/images/v{i}.nii.gz")
            nib.save(nib.Nifti1Image(_line_label((6, 6, 4), 1), np.eye(4)), tmp_path / f"src/labels/v{i}.nii.gz")
        extra = ["--n-test", "2"]
    else:  # a missing source: the command reports the problem and exits with status 2
        extra = []
    status = main(["prepare", dataset, str(tmp_path / "src"), "--out", str(tmp_path / "out"), *extra])
    output = capsys.readouterr()
    if (tmp_path / "src").exists():
        assert status == 0 and "wrote" in output.out
        assert load_datalist(tmp_path / "out", "test")
    else:
        assert status == 2 and "is not an existing folder" in output.err
