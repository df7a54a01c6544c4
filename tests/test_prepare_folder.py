"""The generic converter (``contextloss prepare folder``) on small fake archives in the layouts users bring: DRIVE
(``images/*.tif``, ``1st_manual/*.gif``, ``mask/*.gif``), a CHASE-like flat folder with suffix pairing, 3D TIFF
stacks and NIfTI volumes; and each refusal, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest
import tifffile

from contextloss_monai.cli import main
from contextloss_monai.data import load_datalist
from contextloss_monai.data.prepare import binarize_label, prepare_folder


def _line(shape, value=255, row=None):
    label = np.zeros(shape, np.uint8)
    label[shape[0] // 2 if row is None else row] = value
    return label


def _fov(shape):
    mask = np.zeros(shape, np.uint8)
    mask[2:-2, 2:-2] = 255
    return mask


def _drive(root: Path) -> None:
    """DRIVE's layout: training/ (ids 21-26) and test/ (ids 01-02), each with images/, 1st_manual/, mask/."""
    rng = np.random.default_rng(0)
    for part, ids in (("training", range(21, 27)), ("test", range(1, 3))):
        for folder in ("images", "1st_manual", "mask"):
            (root / part / folder).mkdir(parents=True)
        for i in ids:
            tifffile.imwrite(root / part / "images" / f"{i:02d}_{part}.tif", rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
            iio.imwrite(root / part / "1st_manual" / f"{i:02d}_manual1.gif", _line((20, 24), row=i % 20))
            iio.imwrite(root / part / "mask" / f"{i:02d}_{part}_mask.gif", _fov((20, 24)))


def _read(folder: Path, relative: str) -> np.ndarray:
    return np.asanyarray(nib.load(folder / relative).dataobj)


def test_drive_layout_with_masks_and_a_test_split_by_glob(tmp_path, capsys):
    _drive(tmp_path / "DRIVE")
    out = tmp_path / "drive"
    d = tmp_path / "DRIVE"
    status = main(["prepare", "folder", "--images", f"{d}/*/images/*.tif", "--labels", f"{d}/*/1st_manual/*.gif", "--masks", f"{d}/*/mask/*.gif",
                   "--image-suffix", "_training", "_test", "--label-suffix", "_manual1", "--mask-suffix", "_training_mask", "_test_mask",
                   "--test-glob", "0*", "--structure", "vessel", "--out", str(out), "--folds", "3"])
    assert status == 0, capsys.readouterr().err
    content = json.loads((out / "dataset.json").read_text())
    assert content["numTraining"] == 6 and content["numTest"] == 2
    assert sorted(Path(item["image"]).name for item in content["test"]) == ["01.nii.gz", "02.nii.gz"]
    assert sorted({item["fold"] for item in content["training"]}) == [0, 1, 2]
    assert list(content["channels"].values()) == ["R", "G", "B"]
    item = next(i for i in content["training"] if i["image"].endswith("21.nii.gz"))
    image, label, mask = (_read(out, item[k]) for k in ("image", "label", "mask"))
    assert image.shape == (20, 24, 3) and label.shape == mask.shape == (20, 24)
    assert set(np.unique(label)) == {0, 1} and label[21 % 20].all() and label.sum() == 24  # 255 -> 1, the row kept
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == 16 * 20
    assert image[..., 0].tolist() == tifffile.imread(tmp_path / "DRIVE/training/images/21_training.tif")[..., 0].tolist()
    assert load_datalist(out, "train", fold=0)  # the bundles read it


def test_flat_folder_with_suffix_pairing_fraction_split_and_unpaired_files(tmp_path, capsys):
    """CHASE-like: Image_01L.jpg and Image_01L_1stHO.png side by side; one image without a label."""
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(1)
    for case in ("01L", "01R", "02L", "02R", "03L", "03R", "04L"):
        iio.imwrite(flat / f"Image_{case}.jpg", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        if case != "04L":
            iio.imwrite(flat / f"Image_{case}_1stHO.png", _line((16, 16), value=1))
    arguments = ["prepare", "folder", "--images", f"{flat}/*[LR].jpg", "--labels", f"{flat}/*_1stHO.png", "--label-suffix", "_1stHO",
                 "--test-fraction", "0.34", "--out", str(tmp_path / "chase"), "--folds", "2"]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert "Image_04L.jpg (case 'Image_04L') has no label" in err and "--skip-unpaired" in err
    assert not (tmp_path / "chase").exists()
    assert main(arguments + ["--skip-unpaired"]) == 0
    printed = capsys.readouterr().out
    assert "left out 1 unpaired file(s)" in printed and "Image_04L" in printed
    content = json.loads((tmp_path / "chase/dataset.json").read_text())
    assert (content["numTraining"], content["numTest"]) == (4, 2)  # round(0.34 * 6) test cases, seeded
    assert main(arguments + ["--skip-unpaired", "--overwrite"]) == 0
    assert json.loads((tmp_path / "chase/dataset.json").read_text())["test"] == content["test"]  # the same seed, the same split


def test_3d_tiff_stacks_and_nifti_volumes(tmp_path):
    stacks = tmp_path / "stacks"
    for folder in ("img", "seg"):
        (stacks / folder).mkdir(parents=True)
    for i in range(4):
        tifffile.imwrite(stacks / "img" / f"v{i}.tif", np.full((5, 12, 10), i, np.uint16))  # pages, rows, cols
        tifffile.imwrite(stacks / "seg" / f"v{i}.tif", _line((5, 12, 10), value=7))
    datalist = prepare_folder(stacks / "img", stacks / "seg", tmp_path / "out_stacks", test_ids=["v3"], n_folds=3, progress=False)
    content = json.loads(datalist.read_text())
    item = content["training"][0]
    assert _read(tmp_path / "out_stacks", item["image"]).shape == (12, 10, 5)  # (rows, cols, pages): slices last
    assert _read(tmp_path / "out_stacks", item["label"]).sum() == 12 * 10  # page 2 of the stack
    assert list(content["channels"].values()) == ["channel0"] and [Path(i["image"]).name for i in content["test"]] == ["v3.nii.gz"]

    volumes = tmp_path / "volumes"
    for folder in ("images", "labels"):
        (volumes / folder).mkdir(parents=True)
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    for i in range(4):
        nib.save(nib.Nifti1Image(np.random.default_rng(i).random((8, 9, 6, 2)).astype(np.float32), affine), volumes / "images" / f"c{i}_0000.nii.gz")
        nib.save(nib.Nifti1Image(_line((8, 9, 6), value=1), affine), volumes / "labels" / f"c{i}.nii.gz")
    datalist = prepare_folder(volumes / "images", volumes / "labels", tmp_path / "out_nifti", image_suffix=["_0000"], test_glob=["c0"],
                              channels=["a", "b"], n_folds=3, progress=False)
    content = json.loads(datalist.read_text())
    written = nib.load(tmp_path / "out_nifti" / content["training"][0]["image"])
    assert written.shape == (8, 9, 6, 2) and tuple(float(z) for z in written.header.get_zooms()[:3]) == (0.5, 0.5, 2.0)  # header spacing
    assert list(content["channels"].values()) == ["a", "b"]
    datalist = prepare_folder(volumes / "images", volumes / "labels", tmp_path / "out_spacing", image_suffix=["_0000"], test_glob=["c0"],
                              spacing=[1, 1, 1], n_folds=3, progress=False)
    written = nib.load(tmp_path / "out_spacing" / json.loads(datalist.read_text())["training"][0]["image"])
    assert tuple(float(z) for z in written.header.get_zooms()[:3]) == (1.0, 1.0, 1.0)  # --spacing wins


def test_label_binarisation_is_stated_never_guessed(tmp_path):
    label = np.array([[0, 1, 2], [3, 2, 0]])
    with pytest.raises(ValueError, match=r"has 4 values .*--threshold.*--foreground-values"):
        binarize_label(label, "lab.png")
    assert binarize_label(label, "lab.png", threshold=1.5).tolist() == [[0, 0, 1], [1, 1, 0]]
    assert binarize_label(label, "lab.png", foreground_values=[1, 3]).tolist() == [[0, 1, 0], [1, 0, 0]]
    assert binarize_label(np.array([[0, 255]]), "lab.png").tolist() == [[0, 1]]
    assert binarize_label(np.array([[7, 9]]), "lab.png").tolist() == [[0, 1]]  # two values: the higher is foreground
    assert binarize_label(np.zeros((2, 2)), "lab.png").sum() == 0  # an empty label is a normal input


def _pairs(root: Path, n: int = 4, shape=(10, 10), label=None) -> None:
    for folder in ("img", "lab"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        iio.imwrite(root / "img" / f"c{i}.png", np.full(shape, 100, np.uint8))
        iio.imwrite(root / "lab" / f"c{i}.png", _line(shape) if label is None else label)


@pytest.mark.parametrize("case", ["no_match", "unreadable", "shape", "multivalue", "duplicate", "split", "two_splits", "folds", "unknown_id"])
def test_each_refusal_names_the_problem_and_writes_nothing(tmp_path, case):
    root, out = tmp_path / "src", tmp_path / "out"
    _pairs(root)
    options = {"test_ids": ["c3"], "n_folds": 3, "progress": False}
    expected = {"no_match": (FileNotFoundError, "labels '.*nothing/\\*' matches no image file"),
                "unreadable": (ValueError, "cannot read image file .*c1.png"),
                "shape": (ValueError, "c2.png has shape \\(10, 10\\) but label .*c2.png has shape \\(12, 12\\)"),
                "multivalue": (ValueError, "c0.png has 3 values"),
                "duplicate": (ValueError, "have the same case id 'c0'"),
                "split": (ValueError, "leaves 0 training and 4 test cases"),
                "two_splits": (ValueError, "give exactly one of test_ids, test_glob, test_fraction"),
                "folds": (ValueError, "3 training cases cannot fill n_folds 5"),
                "unknown_id": (ValueError, "test_ids \\['c9'\\] are not case ids")}[case]
    labels = root / "lab"
    if case == "no_match":
        labels = root / "nothing" / "*"
    elif case == "unreadable":
        (root / "img" / "c1.png").write_bytes(b"not a png")
    elif case == "shape":
        iio.imwrite(root / "lab" / "c2.png", _line((12, 12)))
    elif case == "multivalue":
        iio.imwrite(root / "lab" / "c0.png", np.array([[0, 1, 2]] * 10, np.uint8).repeat(4, axis=1)[:, :10])
    elif case == "duplicate":
        tifffile.imwrite(root / "img" / "c0.tif", np.zeros((10, 10), np.uint8))
    elif case == "split":
        options["test_ids"], options["test_glob"] = None, ["c*"]
    elif case == "two_splits":
        options["test_fraction"] = 0.5
    elif case == "folds":
        options["n_folds"] = 5
    elif case == "unknown_id":
        options["test_ids"] = ["c9"]
    error, message = expected
    with pytest.raises(error, match=message):
        prepare_folder(root / "img", labels, out, **options)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written
