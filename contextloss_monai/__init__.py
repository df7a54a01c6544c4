"""ContextLoss for MONAI: topology-preserving segmentation of thin structures in 2D and 3D."""

__version__ = "0.5.0"
