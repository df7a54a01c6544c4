"""Topology of binary masks: skeletons, the critical pixel mask of ContextLoss, distances."""

from contextloss_monai.topology.betti import betti_numbers, tile_betti_numbers, tile_component_counts
from contextloss_monai.topology.critical_mask import critical_pixel_mask, error_context
from contextloss_monai.topology.distance import closer_to_error, squared_distance_to, squared_distance_to_tensor
from contextloss_monai.topology.tiling import tile_slices
from contextloss_monai.topology.skeleton import (
    SKELETON_METHODS,
    binary_soft_skeleton,
    skeletonize,
    skeletonize_exact,
    soft_skeleton,
)

__all__ = [
    "betti_numbers",
    "tile_betti_numbers",
    "tile_component_counts",
    "tile_slices",
    "SKELETON_METHODS",
    "critical_pixel_mask",
    "closer_to_error",
    "squared_distance_to",
    "squared_distance_to_tensor",
    "error_context",
    "skeletonize",
    "skeletonize_exact",
    "soft_skeleton",
    "binary_soft_skeleton",
]
