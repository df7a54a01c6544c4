"""The field of view of an image: where it has data and a label (a fundus photograph's circular aperture, a
microscope's imaged region). Outside it nothing is learned, predicted or measured.

A dataset item may carry its mask (``mask`` in ``dataset.json``, written by ``contextloss prepare`` from a
mask folder); :class:`EnsureFieldOfViewd` gives every item one — its own, one derived from the image's
intensity, or the whole image — so that the bundles run one pipeline whether a dataset has masks or not:

* training: :class:`MarkOutsideFieldOfViewd` after cropping marks the label outside with
  :data:`~contextloss_monai.losses.OUTSIDE_LABEL`, which :class:`~contextloss_monai.losses.FieldOfViewLoss` leaves out;
* inference and evaluation: :class:`ApplyFieldOfViewd` sets the prediction (and the label) to background
  outside, and the topology metrics leave out the tiles that lie entirely outside.

Masks are channel-first ``(1, *spatial)``; a pixel is inside where the mask is greater than 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

from contextloss_monai.checks import check_field_of_view
from contextloss_monai.losses.field_of_view import OUTSIDE_LABEL
from contextloss_monai.utils import to_numpy

__all__ = [
    "ApplyFieldOfView",
    "ApplyFieldOfViewd",
    "EnsureFieldOfViewd",
    "IntensityFieldOfView",
    "MarkOutsideFieldOfView",
    "MarkOutsideFieldOfViewd",
]


def _check_mask(mask: NdarrayOrTensor, img: NdarrayOrTensor, name: str, mask_name: str) -> None:
    check_field_of_view(mask, (1, *img.shape[1:]), mask_name, of=f"{name} of shape {tuple(img.shape)}")


def _inside(mask: NdarrayOrTensor, like: NdarrayOrTensor) -> NdarrayOrTensor:
    """``mask > 0`` on the device and in the array type of ``like``, without metadata (a result keeps ``like``'s)."""
    if isinstance(mask, MetaTensor):
        mask = mask.as_tensor()
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(mask, device=like.device) > 0
    return to_numpy(mask) > 0


def _float32(like: NdarrayOrTensor):
    return torch.float32 if isinstance(like, torch.Tensor) else np.float32


class IntensityFieldOfView(Transform):
    """
    A field of view derived from a channel-first image ``(C, *spatial)``: the pixels whose mean intensity over
    the channels exceeds ``threshold`` (in the image's stored units, before any scaling), shrunk by ``margin``
    pixels. For a fundus photograph without its mask: the dark corners lie below a small threshold, the bright
    rim of the aperture within a margin of a few pixels.

    Args:
        threshold: intensity above which a pixel is inside.
        margin: pixels removed along the border of the region (binary erosion, the full neighbourhood).

    Returns:
        a mask ``(1, *spatial)`` of 0 / 1 in the image's array type and ``float32``.

    Example:
        >>> mask = IntensityFieldOfView(threshold=10, margin=8)(photo)   # photo (3, H, W), 0..255
    """

    def __init__(self, threshold: float, margin: int = 0) -> None:
        if int(margin) != margin or margin < 0:
            raise ValueError(f"margin must be a whole number of pixels >= 0, got {margin!r}.")
        self.threshold = float(threshold)
        self.margin = int(margin)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        inside = to_numpy(img).mean(axis=0, dtype=np.float64) > self.threshold
        if self.margin:
            from scipy import ndimage

            structure = ndimage.generate_binary_structure(inside.ndim, inside.ndim)
            inside = ndimage.binary_erosion(inside, structure, iterations=self.margin, border_value=0)
        mask, *_ = convert_to_dst_type(inside[None].astype(np.float32), img, dtype=_float32(img))
        return mask


class EnsureFieldOfViewd(MapTransform):
    """
    Give an item a field-of-view mask under ``mask_key``: its own when it has one; otherwise, with a
    ``threshold``, one derived from the image (:class:`IntensityFieldOfView`); otherwise the whole image.
    Place it after the channel-first transforms and before intensity scaling (the threshold is in stored units).

    Args:
        mask_key: where the mask is (or goes).
        image_key: the image whose shape (and intensity) the mask takes.
        threshold: derive a missing mask from the image's intensity; ``None``: a missing mask is all inside.
        margin: pixels the derived mask is shrunk by.
        override: derive the mask even where the item has one (``threshold`` required).

    Raises:
        ValueError: when an item's own mask does not match the image's spatial shape.
    """

    def __init__(
        self,
        mask_key: str = "mask",
        image_key: str = "image",
        threshold: float | None = None,
        margin: int = 0,
        override: bool = False,
    ) -> None:
        super().__init__(mask_key, allow_missing_keys=True)
        if override and threshold is None:
            raise ValueError("override=True derives the mask from the image: give a threshold (fov_threshold).")
        self.mask_key, self.image_key = mask_key, image_key
        self.derive = IntensityFieldOfView(threshold, margin) if threshold is not None else None
        self.override = override

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        image = d[self.image_key]
        if self.mask_key in d and not self.override:
            _check_mask(d[self.mask_key], image, self.image_key, self.mask_key)
        elif self.derive is not None:
            d[self.mask_key] = self.derive(image)
        else:
            d[self.mask_key], *_ = convert_to_dst_type(np.ones((1, *image.shape[1:]), np.float32), image, dtype=_float32(image))
        return d


class ApplyFieldOfView(Transform):
    """
    Set an image ``(C, *spatial)`` to ``background`` outside the field of view ``(1, *spatial)``; a binary
    prediction or label becomes background there.

    Args:
        background: the value outside.

    Raises:
        ValueError: when the mask's shape does not match.

    Example:
        >>> pred = ApplyFieldOfView()(pred, mask)    # pred (1, H, W) class indices, mask (1, H, W)
    """

    def __init__(self, background: float = 0) -> None:
        self.background = background

    def __call__(self, img: NdarrayOrTensor, mask: NdarrayOrTensor, name: str = "img") -> NdarrayOrTensor:
        _check_mask(mask, img, name, "mask")
        inside = _inside(mask, img)
        if isinstance(img, torch.Tensor):
            return torch.where(inside, img, torch.as_tensor(self.background, dtype=img.dtype, device=img.device))
        return np.where(inside, img, np.asarray(self.background, dtype=img.dtype))


class ApplyFieldOfViewd(MapTransform):
    """Dictionary version of :class:`ApplyFieldOfView`: ``keys`` (the prediction, the label) set to
    ``background`` outside the mask under ``mask_key``.

    Args:
        keys: the images to restrict.
        mask_key: the field-of-view mask (:class:`EnsureFieldOfViewd` gives every item one).
        background: the value outside.
    """

    def __init__(self, keys: KeysCollection, mask_key: str = "mask", background: float = 0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.apply = ApplyFieldOfView(background)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.apply(d[key], d[self.mask_key], name=str(key))
        return d


class MarkOutsideFieldOfView(Transform):
    """
    Mark the pixels of a class-index label ``(1, *spatial)`` outside the field of view with ``outside_value``
    (:data:`~contextloss_monai.losses.OUTSIDE_LABEL`), which :class:`~contextloss_monai.losses.FieldOfViewLoss`
    leaves out of the loss.

    Example:
        >>> label = MarkOutsideFieldOfView()(label, mask)   # 0 / 1 inside, 2 outside
    """

    def __init__(self, outside_value: int = OUTSIDE_LABEL) -> None:
        self.outside_value = outside_value
        self.apply = ApplyFieldOfView(background=outside_value)

    def __call__(self, label: NdarrayOrTensor, mask: NdarrayOrTensor, name: str = "label") -> NdarrayOrTensor:
        return self.apply(label, mask, name)


class MarkOutsideFieldOfViewd(MapTransform):
    """Dictionary version of :class:`MarkOutsideFieldOfView`, placed after the training crop (a crop centred by
    label would otherwise take the mark for foreground); the mask is then removed from the item (``drop_mask``),
    its information being in the label.

    Args:
        keys: the label(s).
        mask_key: the field-of-view mask.
        outside_value: the mark.
        drop_mask: remove ``mask_key`` from the item.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        mask_key: str = "mask",
        outside_value: int = OUTSIDE_LABEL,
        drop_mask: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.mark = MarkOutsideFieldOfView(outside_value)
        self.drop_mask = drop_mask

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.mark(d[key], d[self.mask_key], name=str(key))
        if self.drop_mask:
            d.pop(self.mask_key)
        return d
