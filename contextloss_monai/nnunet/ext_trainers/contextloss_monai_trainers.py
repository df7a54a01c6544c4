"""The module nnU-Net imports from the folder named by ``nnUNet_extTrainer`` (see
``contextloss nnunet trainer-path``): this package's trainers, by their ``-tr`` names."""

from contextloss_monai.nnunet.trainers import *  # noqa: F401,F403
