"""The label's tubed skeleton, the target of Skeleton Recall (Kirchhoff et al., ECCV 2024), computed in the data
pipeline as its authors do: no differentiable skeleton in the loss, a thin tube around the label's centre line
instead, whose soft recall the loss measures (:class:`~contextloss_monai.losses.SkeletonRecallLoss`)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

from contextloss_monai.checks import check_positive_int
from contextloss_monai.utils import to_numpy

__all__ = ["SkeletonTube", "SkeletonTubed", "tubed_skeleton"]


def tubed_skeleton(label: np.ndarray, dilations: int = 2, ignore_value: int | None = None) -> np.ndarray:
    """
    The tubed skeleton of one class-index label ``(*spatial)`` (2D or 3D): the exact skeleton of its foreground
    (all classes above 0 together, without the pixels labelled ``ignore_value``, e.g. outside the field of view),
    dilated ``dilations`` times with the smallest cross-shaped neighbourhood, kept where the label is foreground
    and carrying the label's class there; 0 elsewhere. An empty label gives an empty tube.

    Returns:
        an array of the label's shape and dtype.
    """
    from scipy import ndimage

    from contextloss_monai.topology import skeletonize

    foreground = label > 0 if ignore_value is None else (label > 0) & (label != ignore_value)
    if not foreground.any():
        return np.zeros_like(label)
    skeleton = skeletonize(foreground[None, None], method="exact")[0, 0]
    if dilations:
        structure = ndimage.generate_binary_structure(label.ndim, 1)
        skeleton = ndimage.binary_dilation(skeleton, structure=structure, iterations=dilations)
    return np.where(skeleton & foreground, label, 0).astype(label.dtype, copy=False)


class SkeletonTube(Transform):
    """
    The tubed skeleton (:func:`tubed_skeleton`) of a channel-first class-index label ``(1, *spatial)``, as the
    authors of Skeleton Recall compute it: skeleton, two dilations, restricted to the label.

    Args:
        dilations: how many times the skeleton is dilated (the authors: 2, a tube about 5 pixels wide).
        ignore_value: a label value that is not a class (the field-of-view mark): background for the tube.

    Raises:
        ValueError: for a label that is not ``(1, H, W)`` or ``(1, H, W, D)``, or negative class values.

    Example:
        >>> tube = SkeletonTube()(label)   # label (1, H, W) in {0, 1}; tube: 1 on a thin tube around its centre line
    """

    def __init__(self, dilations: int = 2, ignore_value: int | None = None) -> None:
        self.dilations = 0 if dilations == 0 else check_positive_int(dilations, "dilations")
        self.ignore_value = ignore_value

    def __call__(self, label: NdarrayOrTensor) -> NdarrayOrTensor:
        array = to_numpy(label)
        if array.ndim not in (3, 4) or array.shape[0] != 1:
            raise ValueError(f"label must be a channel-first class-index label (1, H, W) or (1, H, W, D), got shape {tuple(array.shape)}.")
        if array.size and array.min() < 0:
            raise ValueError("label must hold class indices >= 0.")
        tube = tubed_skeleton(array[0], self.dilations, self.ignore_value)[None]
        out, *_ = convert_to_dst_type(tube, label)
        return out


class SkeletonTubed(MapTransform):
    """Dictionary version of :class:`SkeletonTube`: the tube of ``keys`` (the label) under ``tube_key``, computed
    after the crop (on the patch the loss sees).

    Args:
        keys: the label.
        tube_key: where the tube goes.
        dilations, ignore_value: see :class:`SkeletonTube`.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        tube_key: str = "tube",
        dilations: int = 2,
        ignore_value: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.tube_key = tube_key
        self.tube = SkeletonTube(dilations, ignore_value)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.tube_key] = self.tube(d[key])
        return d
