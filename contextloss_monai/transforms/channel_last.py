"""Channel-last images (2D RGB NIfTI stored as ``(H, W, 3)``) to MONAI's channel-first layout."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils.enums import MetaKeys


__all__ = ["ChannelLastToFirst", "ChannelLastToFirstd"]


class ChannelLastToFirst(Transform):
    """Move the last axis of an image to the front and record that it was a channel axis.

    A 2D RGB image saved as NIfTI ``(H, W, 3)`` loads with the spatial shape ``(H, W, 3)`` in its
    metadata. MONAI's ``EnsureChannelFirst(channel_dim=-1)`` moves the axis but keeps that spatial
    shape, so a prediction derived from the image is later saved as a 3D ``(1, H, W)`` volume. This
    transform also sets ``spatial_shape`` to ``(H, W)`` and ``original_channel_dim`` to "no channel" (what a
    2D single-channel NIfTI image has; MONAI's writer would otherwise move the prediction's channel back to
    the end), so that predictions derived from the image are written as ``(H, W)`` images.

    Example:
        >>> ChannelLastToFirst()(np.zeros((64, 48, 3))).shape
        (3, 64, 48)
    """

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if img.ndim < 3:
            raise ValueError(f"img must have spatial axes and a last channel axis (at least 3 dims), got shape {tuple(img.shape)}.")
        if isinstance(img, torch.Tensor):
            out = torch.movedim(img, -1, 0)
            if isinstance(out, MetaTensor):
                out.meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(out.shape[1:])
                out.meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan")
            return out
        return np.moveaxis(img, -1, 0)


class ChannelLastToFirstd(MapTransform):
    """Dictionary version of :class:`ChannelLastToFirst`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ChannelLastToFirst()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
