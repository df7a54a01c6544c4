"""The one way files and folders are written (``contextloss_monai.utils``): a failed or killed writer leaves the
previous content, a finished one the complete new content; nothing else is left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from contextloss_monai.utils import atomic_path, install_folder, remove_partial_files, staging_folder, write_text_atomic


def test_atomic_path_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "pred.nii.gz"
    with atomic_path(target, suffix=".nii.gz") as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".pred.nii.gz.")
        assert temporary.name.endswith(".partial.nii.gz")  # a writer that picks the format by the ending gets it
        temporary.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"first" and sorted(p.name for p in target.parent.iterdir()) == ["pred.nii.gz"]
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "t.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o644  # the umask's permissions, not mkstemp's 0600


def test_a_killed_writer_leaves_the_previous_file_and_its_leftover_is_removable(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    code = ("import os, sys; from contextloss_monai.utils import atomic_path\n"
            f"with atomic_path({str(target)!r}) as t:\n    t.write_bytes(b'half'); os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    assert target.read_bytes() == b"previous"
    assert len(list(tmp_path.glob(".model.pt.*.partial"))) == 1
    remove_partial_files(tmp_path, "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_staging_folder_swaps_the_folder_in_whole(tmp_path):
    out = tmp_path / "data"
    with staging_folder(out) as staging:
        (staging / "a.txt").write_text("one")
    assert (out / "a.txt").read_text() == "one"
    with pytest.raises(FileExistsError, match="overwrite"):
        with staging_folder(out):
            pass
    with pytest.raises(RuntimeError), staging_folder(out, overwrite=True) as staging:
        (staging / "b.txt").write_text("two")
        raise RuntimeError("failed half-way")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # untouched
    with staging_folder(out, overwrite=True) as staging:
        (staging / "b.txt").write_text("two")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    link = tmp_path / "link"
    link.symlink_to(out)
    with pytest.raises(ValueError, match="not a folder; not replaced"):
        install_folder(tmp_path / "data", link)
