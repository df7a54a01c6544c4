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

from contextloss_monai.checks import as_bool_array, check_batched_spatial, check_same_shape, check_tile_shape

__all__ = ["TopologyMetric", "per_sample_and_channel", "per_tiled_image", "prepare_binary_pair"]


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


def per_sample_and_channel(
    pred: np.ndarray, label: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], np.ndarray | float]
) -> torch.Tensor:
    """``fn(pred[b, c], label[b, c])`` for every sample and channel, stacked to ``(B, C, *value_shape)``."""
    values = [[np.asarray(fn(pred[b, c], label[b, c]), dtype=np.float64) for c in range(pred.shape[1])]
              for b in range(pred.shape[0])]
    return torch.as_tensor(np.asarray(values), dtype=torch.float32)


def per_tiled_image(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool,
    patch_size: Sequence[int] | int | None,
    image_fn: Callable[[np.ndarray, np.ndarray, tuple[int, ...]], float],
) -> torch.Tensor:
    """The body of a tiled metric: check the pair (:func:`prepare_binary_pair`) and ``patch_size``, then
    ``image_fn(pred, label, tile_shape)`` per sample and channel, ``(B, C)``."""
    pred, label = prepare_binary_pair(y_pred, y, include_background)
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
        accepted = set(inspect.signature(self.compute_fn).parameters) - {"y_pred", "y", "include_background"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown option(s) {unknown}; it takes {sorted(accepted)}.")
        self.include_background = include_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans
        self.options = options

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        values = self.compute_fn(y_pred, y, include_background=self.include_background, **self.options)
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
