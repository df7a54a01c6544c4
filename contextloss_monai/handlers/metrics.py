"""Ignite handlers for the topology metrics, like ``monai.handlers.MeanDice``: attach one to a
``SupervisedEvaluator`` (or list it in a bundle's ``key_val_metric`` / ``additional_metrics``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ignite.metrics.metric import reinit__is_reduced

from monai.handlers.ignite_metric import IgniteMetricHandler

from contextloss_monai.metrics import AGSMetric, BettiErrorMetric, ClDiceMetric, E0GtMetric, TopologyMetric

__all__ = ["AGS", "BettiError", "ClDice", "E0Gt", "TopologyMetricHandler"]


def _identity(x):
    return x


class TopologyMetricHandler(IgniteMetricHandler):
    """
    An Ignite handler around the topology metric ``metric_class``; the keyword arguments are that metric's
    (``include_background``, ``reduction``, ``patch_size``, ``connectivity``, ...).

    Args:
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``, as in MONAI's handlers, or to
            ``(y_pred, y, mask)`` with each image's field of view (``from_engine(["pred", "label", "mask"])``):
            the metric then leaves out what lies outside it.
        save_details: keep the per-image values in ``engine.state.metric_details`` (for report writers).
        metric_options: passed to ``metric_class``.
    """

    metric_class: type[TopologyMetric]

    def __init__(self, output_transform: Callable = _identity, save_details: bool = True, **metric_options) -> None:
        super().__init__(metric_fn=self.metric_class(**metric_options), output_transform=output_transform, save_details=save_details)
        self._skip_unrolling = True  # Ignite >= 0.5 unrolls only pairs: the lists go to update() whole, with the masks

    @reinit__is_reduced
    def update(self, output: Sequence) -> None:
        """
        Args:
            output: ``(y_pred, y)`` or ``(y_pred, y, mask)``.

        Raises:
            ValueError: for another length.
        """
        if len(output) == 3:
            y_pred, y, mask = output
            self.metric_fn(y_pred, y, mask=mask)
            return
        if len(output) != 2:
            raise ValueError(f"output must be (y_pred, y) or (y_pred, y, mask), got {len(output)} items.")
        super().update(output)


class BettiError(TopologyMetricHandler):
    """Tile-averaged Betti error of one kind (``error="e"`` by default, or ``"e0"``, ``"e1"``, ``"e2"``); see
    :class:`contextloss_monai.metrics.BettiErrorMetric` for the arguments."""

    metric_class = BettiErrorMetric

    def __init__(self, error: str = "e", **kwargs) -> None:
        super().__init__(error=error, **kwargs)


class E0Gt(TopologyMetricHandler):
    """e0-Gt; see :class:`contextloss_monai.metrics.E0GtMetric` for the arguments."""

    metric_class = E0GtMetric


class AGS(TopologyMetricHandler):
    """AGS (%); see :class:`contextloss_monai.metrics.AGSMetric` for the arguments."""

    metric_class = AGSMetric


class ClDice(TopologyMetricHandler):
    """clDice with the exact skeleton; see :class:`contextloss_monai.metrics.ClDiceMetric` for the arguments."""

    metric_class = ClDiceMetric
