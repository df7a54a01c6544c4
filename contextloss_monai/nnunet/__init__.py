"""ContextLoss in nnU-Net v2: fine-tuning trainers, a converter from this project's dataset folders to nnU-Net's
raw format, and the topological post-processing and evaluation of nnU-Net prediction folders.

Needs nnU-Net (the ``nnunet`` extra plus the packages that go in with ``--no-deps``, see
``docs/nnunet.md``); nothing else in ``contextloss_monai`` imports this subpackage. nnU-Net finds the trainers
through its ``nnUNet_extTrainer`` variable: ``export nnUNet_extTrainer=$(contextloss nnunet
trainer-path)``, then ``nnUNetv2_train ... -tr nnUNetTrainerCLoss``.
"""

from __future__ import annotations

from monai.utils import optional_import

_, has_nnunet = optional_import("nnunetv2")
if not has_nnunet:
    raise ImportError(
        "contextloss_monai.nnunet needs nnU-Net v2: pip install -c constraints.txt -e '.[nnunet]' && pip install "
        "-c constraints.txt --no-deps nnunetv2 dynamic-network-architectures batchgenerators batchgeneratorsv2 acvl-utils"
    )

from contextloss_monai.nnunet import trainers
from contextloss_monai.nnunet.convert import convert_dataset_folder
from contextloss_monai.nnunet.evaluate import evaluate_prediction_folder
from contextloss_monai.nnunet.postprocess import postprocess_prediction_folder
from contextloss_monai.nnunet.trainers import *  # noqa: F401,F403 - the trainers, by their -tr names

__all__ = ["convert_dataset_folder", "evaluate_prediction_folder", "postprocess_prediction_folder", *trainers.__all__]
