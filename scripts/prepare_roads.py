#!/usr/bin/env python
"""Convert the Massachusetts Roads archive into the bundles' dataset folder.

Source: https://www.cs.toronto.edu/~vmnih/data/ (mass_roads/{train,valid,test}/{sat,map}) or the Kaggle
mirror balraj98/massachusetts-roads-dataset (tiff/{train,val,test}{,_labels}). Images with more than 4 %
white (no-data) pixels are dropped, as in the paper (421 train / 49 test).

Example:
    python scripts/prepare_roads.py /data/mass_roads --out data/roads
"""

import sys

from contextloss_monai.data.prepare import prepare_roads
from contextloss_monai.data.prepare.cli import converter_parser, run_converter

if __name__ == "__main__":
    parser = converter_parser(__doc__, "extracted archive (the folder holding train/ valid/ test/ or tiff/)")
    parser.add_argument("--max-white", type=float, default=0.04, help="largest share of white pixels kept (default 0.04)")
    args = parser.parse_args()
    sys.exit(run_converter(prepare_roads, args, max_white=args.max_white))
