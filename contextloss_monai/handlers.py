"""Ignite handlers for the topology metrics, like ``monai.handlers.MeanDice``: attach one to a
``SupervisedEvaluator`` (or list it in a bundle's ``key_val_metric`` / ``additional_metrics``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.utils import MetricReduction

from contextloss_monai.metrics import AGSMetric, BettiErrorMetric, ClDiceMetric, E0GtMetric

__all__ = ["AGS", "BettiError", "ClDice", "E0Gt"]


def _identity(x):
    return x


class BettiError(IgniteMetricHandler):
    """
    Tile-averaged Betti error of one kind (``"e"`` by default, or ``"e0"``, ``"e1"``, ``"e2"``); see
    :class:`contextloss_monai.metrics.BettiErrorMetric` for the arguments.

    Args:
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``, as in MONAI's handlers.
        save_details: keep the per-image values in ``engine.state.metric_details`` (for CSV writers).
    """

    def __init__(
        self,
        error: str = "e",
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        patch_size: Sequence[int] | int | None = None,
        connectivity: int | None = None,
        slice_axis: int | None = None,
        output_transform: Callable = _identity,
        save_details: bool = True,
    ) -> None:
        metric_fn = BettiErrorMetric(
            include_background=include_background,
            reduction=reduction,
            patch_size=patch_size,
            connectivity=connectivity,
            slice_axis=slice_axis,
            error=error,
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class E0Gt(IgniteMetricHandler):
    """e0-Gt; see :class:`contextloss_monai.metrics.E0GtMetric` for the arguments."""

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        patch_size: Sequence[int] | int | None = None,
        connectivity: int | None = None,
        output_transform: Callable = _identity,
        save_details: bool = True,
    ) -> None:
        metric_fn = E0GtMetric(
            include_background=include_background, reduction=reduction, patch_size=patch_size, connectivity=connectivity
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class AGS(IgniteMetricHandler):
    """AGS (%); see :class:`contextloss_monai.metrics.AGSMetric` for the arguments."""

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        patch_size: Sequence[int] | int | None = None,
        output_transform: Callable = _identity,
        save_details: bool = True,
    ) -> None:
        metric_fn = AGSMetric(include_background=include_background, reduction=reduction, patch_size=patch_size)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class ClDice(IgniteMetricHandler):
    """clDice with the exact skeleton; see :class:`contextloss_monai.metrics.ClDiceMetric` for the arguments."""

    def __init__(
        self,
        include_background: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        patch_size: Sequence[int] | int | None = None,
        output_transform: Callable = _identity,
        save_details: bool = True,
    ) -> None:
        metric_fn = ClDiceMetric(include_background=include_background, reduction=reduction, patch_size=patch_size)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
