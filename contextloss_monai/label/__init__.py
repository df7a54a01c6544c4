"""Serving the bundles through MONAI Label: the app, its tasks, the studies folder's guard and the server's.

MONAI Label (``monailabel``) is an optional extra (see ``docs/monailabel.md``);
import this package only where it is installed.

- :mod:`~contextloss_monai.label.app`: :class:`ContextLossLabelApp`, what ``apps/contextloss_label`` serves;
- :mod:`~contextloss_monai.label.tasks`: a bundle's infer task and two-stage train task, the request checks;
- :mod:`~contextloss_monai.label.datastore`: the studies folder confined (plain names, no link leaving it,
  uploads checked);
- :mod:`~contextloss_monai.label.server`: the route allow-list, token and loopback rule, checked endpoints.
"""

from contextloss_monai.label.app import ContextLossLabelApp, SafeSessions
from contextloss_monai.label.datastore import SafeLocalDatastore, read_image_file
from contextloss_monai.label.server import RequestGuard, harden_server
from contextloss_monai.label.tasks import BundleSegmentationInfer, BundleTwoStageTrain, check_infer_params, check_train_params, find_bundles

__all__ = [
    "BundleSegmentationInfer",
    "BundleTwoStageTrain",
    "ContextLossLabelApp",
    "RequestGuard",
    "SafeLocalDatastore",
    "SafeSessions",
    "check_infer_params",
    "check_train_params",
    "find_bundles",
    "harden_server",
    "read_image_file",
]
