#!/usr/bin/env python
"""Convert the Vessap annotated volumes (two channels) into the bundles' dataset folder.

Source: the VesSAP training data of Todorov et al., Nat. Methods 2020 (http://discotechnologies.org/VesSAP).
Files are found by glob patterns (NIfTI or TIFF stacks), paired in sorted order; the last 3 are the test split (8 / 3).

Example:
    python scripts/prepare_vessap.py /data/vessap --out data/vessap
    python scripts/prepare_vessap.py /data/vessap --out data/vessap --channel-glob "raw/*_C00.nii.gz" "raw/*_C01.nii.gz" --label-glob "seg/*.nii.gz"
"""

import sys

from contextloss_monai.data.prepare import VESSAP_DEFAULTS, prepare_vessap
from contextloss_monai.data.prepare.cli import converter_parser, run_converter

if __name__ == "__main__":
    parser = converter_parser(__doc__, "folder holding the volumes")
    parser.add_argument("--channel-glob", nargs="+", default=list(VESSAP_DEFAULTS["channel_globs"]), help="one pattern per channel")
    parser.add_argument("--label-glob", default=VESSAP_DEFAULTS["label_glob"])
    parser.add_argument("--n-test", type=int, default=VESSAP_DEFAULTS["n_test"])
    parser.add_argument("--spacing", type=float, nargs=3, default=None, help="voxel size in mm (default: NIfTI header)")
    args = parser.parse_args()
    sys.exit(run_converter(prepare_vessap, args, channel_globs=args.channel_glob, label_glob=args.label_glob,
                           n_test=args.n_test, spacing=args.spacing))
