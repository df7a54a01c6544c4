#!/usr/bin/env python
"""Convert the HRF fundus database into the bundles' dataset folder.

Source: https://www5.cs.fau.de/research/data/fundus-images/ (all.zip, extracted: images/, manual1/, mask/).
The last three images of each group (healthy, glaucoma, diabetic retinopathy) are the test split: 36 / 9.

Example:
    python scripts/prepare_hrf.py /data/hrf --out data/hrf
"""

import sys

from contextloss_monai.data.prepare import prepare_hrf
from contextloss_monai.data.prepare.cli import converter_parser, run_converter

if __name__ == "__main__":
    parser = converter_parser(__doc__, "extracted all.zip (the folder holding images/, manual1/, mask/)")
    parser.add_argument("--n-test-per-group", type=int, default=3)
    args = parser.parse_args()
    sys.exit(run_converter(prepare_hrf, args, n_test_per_group=args.n_test_per_group))
