"""The studies folder as the MONAI Label server sees it: plain names, files confined to the folder, images checked.

Every image id and label tag is a plain name (:func:`contextloss_monai.checks.check_plain_name`); an id the
datastore does not hold is a 404 before any file is touched (MONAI Label would otherwise read the empty path,
the server's working directory); every path the datastore reads, writes or deletes is resolved — symbolic links
included — and refused when it leaves the studies folder; an upload must be a readable NIfTI image within the
size cap (the whole file is read, so a truncated file is refused), a label of the image's spatial shape
holding only 0 and 1.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException

from contextloss_monai.checks import check_plain_name

__all__ = ["DEFAULT_MAX_IMAGE_BYTES", "IMAGE_SUFFIXES", "SafeLocalDatastore", "read_image_file"]

#: the file types the server accepts as images and labels (what the bundles' LoadImaged reads as NIfTI)
IMAGE_SUFFIXES = (".nii.gz", ".nii")
#: the largest image (its voxels in memory) accepted by default: ``--conf max_image_mb`` changes it
DEFAULT_MAX_IMAGE_BYTES = 1 << 30


def read_image_file(path: str | os.PathLike, what: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> np.ndarray:
    """The voxels of a NIfTI file sent to the server, read whole, after checking its declared size.

    Raises:
        ValueError: naming ``what``: another file type, an unreadable or truncated file, fewer than 2 or more than
            4 dimensions, more than ``max_bytes`` of voxels, or NaN / infinite values.
    """
    path = str(path)
    if not path.lower().endswith(IMAGE_SUFFIXES):
        raise ValueError(f"the {what} must be a NIfTI file ({', '.join(IMAGE_SUFFIXES)}), got {Path(path).name!r}.")
    try:
        image = nib.load(path)
        shape = tuple(int(n) for n in image.shape)
        declared = int(np.prod(shape, dtype=np.int64)) * image.get_data_dtype().itemsize
        if declared > max_bytes:
            raise ValueError(f"it declares {declared} bytes of voxels {shape}, more than the {max_bytes} allowed (--conf max_image_mb)")
        if not 2 <= len(shape) <= 4:
            raise ValueError(f"it has {len(shape)} dimensions {shape}; 2 to 4 are served")
        data = np.asanyarray(image.dataobj)  # the whole file: a truncated one fails here
    except ValueError as error:
        raise ValueError(f"the {what} is not a servable image: {error}.") from error
    except Exception as error:  # noqa: BLE001 - any reader failure means: not an image
        raise ValueError(f"the {what} is not a readable image ({type(error).__name__}: {str(error)[:200]}).") from error
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise ValueError(f"the {what} holds NaN or infinite values.")
    return data


def _remove_temporary(path: str) -> None:
    """Remove ``path`` if it is a file directly in the temporary folder (where MONAI Label's endpoints put uploads)."""
    if os.path.isfile(path) and Path(path).resolve().parent == Path(tempfile.gettempdir()).resolve():
        Path(path).unlink(missing_ok=True)


class SafeLocalDatastore(LocalDatastore):
    """MONAI Label's local datastore confined to the studies folder (see the module docstring).

    Args:
        datastore_path: the studies folder.
        max_image_bytes: the largest upload accepted (voxels in memory).
        kwargs: :class:`monailabel.datastore.local.LocalDatastore`'s.
    """

    def __init__(self, datastore_path: str, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, **kwargs: Any) -> None:
        self.root = Path(datastore_path).resolve()
        self.max_image_bytes = max_image_bytes
        super().__init__(datastore_path, **kwargs)

    def _inside(self, path: str | os.PathLike, what: str) -> str:
        """``path`` resolved (links followed), if it lies in the studies folder."""
        resolved = Path(os.path.realpath(path))
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{what} is a link that leaves the studies folder; refused.")
        return str(resolved)

    def _known_image(self, image_id: str, name: str = "image"):
        check_plain_name(image_id, name)
        obj = self._datastore.objects.get(image_id)
        if obj is None:
            raise ImageNotFoundException(f"there is no image {image_id!r} in the datastore.")
        return obj

    # reading
    def get_image_uri(self, image_id: str) -> str:
        self._known_image(image_id)
        return self._inside(super().get_image_uri(image_id), f"image {image_id!r}")

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        self._known_image(label_id, "label")
        check_plain_name(label_tag, "tag")
        if self._datastore.label(label_id, label_tag) is None:
            raise LabelNotFoundException(f"there is no label {label_id!r} with tag {label_tag!r} in the datastore.")
        return self._inside(super().get_label_uri(label_id, label_tag), f"label {label_id!r} ({label_tag})")

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        self.get_image_uri(image_id)
        info = super().get_image_info(image_id)
        info.pop("path", None)  # the server's file layout is not the client's business
        return info

    def datalist(self, full_path: bool = True) -> list[dict[str, Any]]:
        """The labelled images (``final`` tag) whose files both lie in the studies folder; links that leave it are skipped."""
        items = []
        for item in super().datalist(full_path=True):
            if all(Path(os.path.realpath(p)).is_relative_to(self.root) for p in item.values()):
                items.append(item)
        if not full_path:
            items = [{k: str(Path(v).relative_to(self.root)) for k, v in item.items()} for item in items]
        return items

    # writing: ``image_filename`` / ``label_filename`` are the temporary files MONAI Label's datastore endpoints
    # wrote for the upload (never a request field); a refused one is removed at once
    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        try:
            return self._add_image(image_id, image_filename, image_info)
        except Exception:
            _remove_temporary(image_filename)
            raise

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        try:
            return self._save_label(image_id, label_filename, label_tag, label_info)
        except Exception:
            _remove_temporary(label_filename)
            raise

    def _add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        image_id = image_id or self._to_id(os.path.basename(image_filename))[0]
        check_plain_name(image_id, "image")
        read_image_file(image_filename, "uploaded image", self.max_image_bytes)
        _, ext = self._to_id(os.path.basename(image_filename))
        self._inside(os.path.join(self._datastore.image_path(), self._filename(image_id, ext)), f"image {image_id!r}")
        return super().add_image(image_id, image_filename, image_info)

    def _save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        self._known_image(image_id)
        check_plain_name(label_tag, "tag")
        label = read_image_file(label_filename, "uploaded label", self.max_image_bytes)
        image_shape = nib.load(self.get_image_uri(image_id)).shape
        if tuple(image_shape[: label.ndim]) != tuple(label.shape) or len(image_shape) > label.ndim + 1:
            raise ValueError(f"the uploaded label has shape {label.shape}, image {image_id!r} has shape {tuple(image_shape)}: "
                             "a label has the image's spatial shape.")
        values = np.unique(label)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"the uploaded label must hold only 0 and 1, found {values[:6].tolist()} (a {{0, 255}} mask: label > 0).")
        _, ext = self._to_id(os.path.basename(label_filename))
        self._inside(os.path.join(self._datastore.label_path(label_tag), self._filename(image_id, ext)), f"label {image_id!r} ({label_tag})")
        return super().save_label(image_id, label_filename, label_tag, label_info)

    def remove_image(self, image_id: str) -> None:
        self.get_image_uri(image_id)
        for tag in list(self._known_image(image_id).labels):
            self.get_label_uri(image_id, tag)
        super().remove_image(image_id)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        self.get_label_uri(label_id, label_tag)
        super().remove_label(label_id, label_tag)
