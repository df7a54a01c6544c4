#!/usr/bin/env python
"""Convert the bone cement line dataset (CLD) into the bundles' dataset folder.

Volumes of 1024 x 1024 x 600 voxels of (45.6 nm)^3, found by glob patterns (NIfTI or TIFF stacks) and paired in
sorted order; the last 4 are the test split (13 / 4).

Example:
    python scripts/prepare_cld.py /data/cld --out data/cld --image-glob "images/*.tif" --label-glob "labels/*.tif"
"""

import sys

from contextloss_monai.data.prepare import CLD_DEFAULTS, prepare_cld
from contextloss_monai.data.prepare.cli import converter_parser, run_converter

if __name__ == "__main__":
    parser = converter_parser(__doc__, "folder holding the volumes")
    parser.add_argument("--image-glob", default=CLD_DEFAULTS["image_glob"])
    parser.add_argument("--label-glob", default=CLD_DEFAULTS["label_glob"])
    parser.add_argument("--n-test", type=int, default=CLD_DEFAULTS["n_test"])
    args = parser.parse_args()
    sys.exit(run_converter(prepare_cld, args, image_glob=args.image_glob, label_glob=args.label_glob, n_test=args.n_test))
