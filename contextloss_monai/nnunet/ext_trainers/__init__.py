"""The folder named by nnU-Net's ``nnUNet_extTrainer``: one module re-exporting this package's trainers."""
