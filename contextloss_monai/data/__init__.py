"""Data: synthetic datasets, preparation of the real ones, and the dataset folder layout bundles read."""

from contextloss_monai.data.dataset_folder import (
    DATALIST_NAME,
    assign_folds,
    check_binary_label,
    load_datalist,
    save_nifti,
    staging_folder,
    write_case,
    write_datalist,
)

__all__ = [
    "DATALIST_NAME",
    "assign_folds",
    "check_binary_label",
    "load_datalist",
    "save_nifti",
    "staging_folder",
    "write_case",
    "write_datalist",
]
