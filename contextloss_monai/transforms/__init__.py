"""MONAI transforms of the ContextLoss workflow."""

from contextloss_monai.transforms.channel_last import ChannelLastToFirst, ChannelLastToFirstd
from contextloss_monai.transforms.field_of_view import (
    ApplyFieldOfView,
    ApplyFieldOfViewd,
    EnsureFieldOfViewd,
    IntensityFieldOfView,
    MarkOutsideFieldOfView,
    MarkOutsideFieldOfViewd,
)
from contextloss_monai.transforms.skeleton_tube import SkeletonTube, SkeletonTubed, tubed_skeleton
from contextloss_monai.transforms.split_pair import SplitPair, SplitPaird
from contextloss_monai.transforms.topological_post_process import (
    TopologicalPostProcess,
    TopologicalPostProcessd,
    keep_components_overlapping,
)

__all__ = [
    "ApplyFieldOfView",
    "ApplyFieldOfViewd",
    "EnsureFieldOfViewd",
    "IntensityFieldOfView",
    "MarkOutsideFieldOfView",
    "MarkOutsideFieldOfViewd",
    "ChannelLastToFirst",
    "ChannelLastToFirstd",
    "SkeletonTube",
    "SkeletonTubed",
    "SplitPair",
    "SplitPaird",
    "TopologicalPostProcess",
    "TopologicalPostProcessd",
    "keep_components_overlapping",
    "tubed_skeleton",
]
