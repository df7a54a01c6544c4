"""ContextLoss and the baseline losses of the paper's tables, as MONAI losses."""

from contextloss_monai.losses.cbdice import CBDiceLoss, DiceCECBDiceLoss
from contextloss_monai.losses.cldice import ClDiceLoss, CompoundClDiceLoss
from contextloss_monai.losses.context_loss import DEFAULT_RESTRICTED, RESTRICTED_READINGS, ContextLoss, binarize_prediction
from contextloss_monai.losses.field_of_view import OUTSIDE_LABEL, FieldOfViewLoss
from contextloss_monai.losses.skeleton_recall import DiceCESkeletonRecallLoss, SkeletonRecallLoss
from contextloss_monai.losses.pixel import ForegroundDiceCELoss, pixel_loss, pixelwise_cross_entropy, prepare_target

__all__ = [
    "CBDiceLoss",
    "ClDiceLoss",
    "CompoundClDiceLoss",
    "ContextLoss",
    "DEFAULT_RESTRICTED",
    "DiceCECBDiceLoss",
    "DiceCESkeletonRecallLoss",
    "FieldOfViewLoss",
    "ForegroundDiceCELoss",
    "OUTSIDE_LABEL",
    "RESTRICTED_READINGS",
    "SkeletonRecallLoss",
    "binarize_prediction",
    "pixel_loss",
    "pixelwise_cross_entropy",
    "prepare_target",
]
