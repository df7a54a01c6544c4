"""What the topology metrics share: input checks, the per-(sample, channel) loop and MONAI's
cumulative-metric plumbing (buffers, reduction, ``get_not_nans``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from contextloss_monai.checks import as_bool_array, check_batched_spatial, check_field_of_view, check_same_shape, check_tile_shape
from contextloss_monai.topology.tiling import tile_slices
from contextloss_monai.utils import to_numpy

__all__ = [
    "TopologyMetric",
    "mean_over_tiles",
    "per_sample_and_channel",
    "per_tiled_image",
    "prepare_binary_pair",
    "restrict_to_field_of_view",
    "tiles_inside",
]


def prepare_binary_pair(
    y_pred: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, include_background: bool
) -> tuple[np.ndarray, np.ndarray]:
    """
    Check a binarized prediction and label ``(B, C, *spatial)`` (tensors on any device, any dtype including
    bfloat16, or arrays) and return them as NumPy ``bool`` arrays, without the first channel when
    ``include_background`` is ``False``: the entry check of every topology metric.

    Raises:
        ValueError: when the shapes differ, the input is not 4D/5D or not binary.
    """
    check_same_shape(y_pred, y, "y_pred", "y")
    check_batched_spatial(y_pred, "y_pred")
    pred, label = as_bool_array(y_pred, "y_pred"), as_bool_array(y, "y")
    if not include_background:
        if pred.shape[1] == 1:
            raise ValueError("include_background=False needs y_pred with more than one channel (one-hot).")
        pred, label = pred[:, 1:], label[:, 1:]
    return pred, label


def restrict_to_field_of_view(
    pred: np.ndarray, label: np.ndarray, mask: torch.Tensor | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """
    The checked pair ``(B, C, *spatial)`` (bool) restricted to a field of view ``mask`` ``(B, 1, *spatial)``
    (inside where greater than 0): prediction and label set to background outside, and the inside as a
    bool array ``(B, *spatial)`` for :func:`tiles_inside`. ``mask=None`` returns the pair unchanged and ``None``.

    Raises:
        ValueError: when the mask is not ``(B, 1, *spatial)`` of the pair's batch and spatial shape.
    """
    if mask is None:
        return pred, label, None
    check_field_of_view(mask, (pred.shape[0], 1, *pred.shape[2:]), "mask", of="the batch (B, 1, *spatial)")
    inside = to_numpy(mask)[:, 0] > 0
    return pred & inside[:, None], label & inside[:, None], inside


def tiles_inside(inside: np.ndarray, tiles: Sequence[int]) -> np.ndarray:
    """Which non-overlapping tiles of an image (raster order, :func:`~contextloss_monai.topology.tiling.tile_slices`)
    hold at least one pixel of the field of view ``inside`` (bool, spatial): the tiles a tiled metric averages."""
    return np.array([inside[tile].any() for tile in tile_slices(inside.shape, tiles)], dtype=bool)


def mean_over_tiles(values: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """The mean over tiles (axis 0) of per-tile values, over the tiles inside the field of view only when
    ``inside`` (:func:`tiles_inside`) is given; NaN when no tile is inside."""
    if inside is None:
        return values.mean(axis=0)
    if not inside.any():
        return np.full(values.shape[1:], np.nan)
    return values[inside].mean(axis=0)


def per_sample_and_channel(
    pred: np.ndarray,
    label: np.ndarray,
    fn: Callable[..., np.ndarray | float],
    inside: np.ndarray | None = None,
) -> torch.Tensor:
    """``fn(pred[b, c], label[b, c])`` for every sample and channel, stacked to ``(B, C, *value_shape)``; with a
    field of view ``inside`` ``(B, *spatial)`` (:func:`restrict_to_field_of_view`), ``fn(pred[b, c], label[b, c], inside[b])``."""
    values = [[np.asarray(fn(pred[b, c], label[b, c]) if inside is None else fn(pred[b, c], label[b, c], inside[b]), dtype=np.float64)
               for c in range(pred.shape[1])] for b in range(pred.shape[0])]
    return torch.as_tensor(np.asarray(values), dtype=torch.float32)


def per_tiled_image(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool,
    patch_size: Sequence[int] | int | None,
    image_fn: Callable[[np.ndarray, np.ndarray, tuple[int, ...]], float],
    mask: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """The body of a tiled metric that skips tiles where prediction and label are both empty: check the pair
    (:func:`prepare_binary_pair`) and ``patch_size``, restrict it to the field of view ``mask``
    (:func:`restrict_to_field_of_view`: tiles entirely outside become empty and are skipped), then
    ``image_fn(pred, label, tile_shape)`` per sample and channel, ``(B, C)``."""
    pred, label = prepare_binary_pair(y_pred, y, include_background)
    pred, label, _ = restrict_to_field_of_view(pred, label, mask)
    tiles = check_tile_shape(patch_size, pred.shape[2:])
    return per_sample_and_channel(pred, label, lambda p, t: image_fn(p, t, tiles))


class TopologyMetric(CumulativeIterationMetric):
    """
    Base of the topology metrics: a MONAI ``CumulativeIterationMetric`` whose per-batch values come from a
    functional form ``compute_fn(y_pred, y, include_background=..., **options)`` returning ``(B, C, ...)``.
    A subclass names its ``compute_fn``; the options it takes are that function's keyword arguments
    (``patch_size``, ``connectivity``, ...), checked by name here and by value at the first call.

    Args:
        include_background: whether to evaluate the first channel.
        reduction: MONAI reduction of the buffered ``(N, C, ...)`` values in :meth:`aggregate`
            (``"mean"``, ``"sum"``, ``"mean_batch"``, ... or ``"none"``); NaN entries are left out.
        get_not_nans: whether :meth:`aggregate` also returns the number of non-NaN values.
        options: keyword arguments of ``compute_fn``.

    Raises:
        TypeError: for an option ``compute_fn`` does not take.
    """

    compute_fn: Callable[..., torch.Tensor]

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        **options,
    ) -> None:
        super().__init__()
        accepted = set(inspect.signature(self.compute_fn).parameters) - {"y_pred", "y", "include_background", "mask"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown option(s) {unknown}; it takes {sorted(accepted)}.")
        self.include_background = include_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans
        self.options = options

    def __call__(self, y_pred, y=None, mask=None, **kwargs):  # type: ignore[override]
        """Compute and buffer the values of a batch ``(B, C, *spatial)`` or a list of channel-first images;
        ``mask``: the field of view of each, ``(B, 1, *spatial)`` or a list of ``(1, *spatial)``, or ``None``."""
        if isinstance(y_pred, (list, tuple)) and mask is not None:
            if not isinstance(mask, (list, tuple)) or len(mask) != len(y_pred):
                raise ValueError("mask must be a list of one field-of-view mask per image of the y_pred list.")
            values = [super(TopologyMetric, self).__call__([p], [t], mask=m[None]) for p, t, m in zip(y_pred, y, mask)]
            return torch.cat(values, dim=0)
        return super().__call__(y_pred, y, mask=mask, **kwargs)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        options = self.options if mask is None else {**self.options, "mask": mask}
        values = self.compute_fn(y_pred, y, include_background=self.include_background, **options)
        return values.to(y_pred.device if isinstance(y_pred, torch.Tensor) else "cpu")

    def aggregate(self, reduction: MetricReduction | str | None = None):  # type: ignore[override]
        """
        Reduce the buffered values.

        Args:
            reduction: overrides the reduction given at construction.

        Returns:
            the reduced value (and the count of non-NaN values when ``get_not_nans``).

        Raises:
            ValueError: when nothing has been buffered yet.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"{type(self).__name__}.aggregate() needs buffered values: call the metric on data first.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f
