"""Topology metrics as MONAI cumulative metrics, with their functional forms. Dice is MONAI's ``DiceMetric``."""

from contextloss_monai.metrics.ags import AGSMetric, compute_ags
from contextloss_monai.metrics.base import TopologyMetric
from contextloss_monai.metrics.betti_error import BettiErrorMetric, betti_error_kinds, compute_betti_error
from contextloss_monai.metrics.cldice import ClDiceMetric, compute_cldice
from contextloss_monai.metrics.e0_gt import E0GtMetric, compute_e0_gt

__all__ = [
    "AGSMetric",
    "BettiErrorMetric",
    "ClDiceMetric",
    "E0GtMetric",
    "TopologyMetric",
    "betti_error_kinds",
    "compute_ags",
    "compute_betti_error",
    "compute_cldice",
    "compute_e0_gt",
]
