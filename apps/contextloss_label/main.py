"""MONAI Label app serving the contextloss-monai bundles (see docs/monailabel.md).

MONAI Label loads this file and instantiates the ``MONAILabelApp`` subclass it finds; the app itself
lives in the package (:mod:`contextloss_monai.label`) so that it is documented and tested there.
"""

from contextloss_monai.label import ContextLossLabelApp

__all__ = ["ContextLossLabelApp"]
