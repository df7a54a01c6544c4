"""Converters to the dataset folder layout: the public archives of the paper's datasets, and any folder of images
and labels (:func:`prepare_folder`).

See ``docs/data.md`` for the archives, their layouts and the splits.
"""

from contextloss_monai.data.prepare.common import Case, read_array
from contextloss_monai.data.prepare.folder import binarize_label, find_folder_cases, prepare_folder
from contextloss_monai.data.prepare.hrf import find_hrf_cases, prepare_hrf
from contextloss_monai.data.prepare.roads import find_roads_cases, prepare_roads, white_fraction
from contextloss_monai.data.prepare.volumes import CLD_DEFAULTS, VESSAP_DEFAULTS, find_volume_cases, prepare_cld, prepare_vessap

__all__ = [
    "CLD_DEFAULTS",
    "Case",
    "binarize_label",
    "find_folder_cases",
    "VESSAP_DEFAULTS",
    "find_hrf_cases",
    "find_roads_cases",
    "find_volume_cases",
    "prepare_cld",
    "prepare_folder",
    "prepare_hrf",
    "prepare_roads",
    "prepare_vessap",
    "read_array",
    "white_fraction",
]
