"""MONAI transforms of the ContextLoss workflow."""

from contextloss_monai.transforms.topological_post_process import (
    TopologicalPostProcess,
    TopologicalPostProcessd,
    keep_components_overlapping,
)

__all__ = ["TopologicalPostProcess", "TopologicalPostProcessd", "keep_components_overlapping"]
