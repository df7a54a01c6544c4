"""Data: synthetic datasets, preparation of the real ones, and the dataset folder layout bundles read."""

from contextloss_monai.data.dataset_folder import (
    DATALIST_NAME,
    CaseArrays,
    assign_folds,
    case_id,
    check_binary_label,
    check_case_ids,
    check_dataset_items,
    load_datalist,
    save_nifti,
    write_case,
    write_datalist,
    write_dataset_folder,
)
from contextloss_monai.utils import staging_folder

__all__ = [
    "DATALIST_NAME",
    "CaseArrays",
    "assign_folds",
    "case_id",
    "check_binary_label",
    "check_case_ids",
    "check_dataset_items",
    "load_datalist",
    "save_nifti",
    "staging_folder",
    "write_case",
    "write_datalist",
    "write_dataset_folder",
]
