#!/usr/bin/env python
"""Zip a bundle as <name>_v<version>.zip (top-level <name>/ folder) for `python -m monai.bundle download --url`,
and record its SHA-256 in <zip>.sha256.

Example:
    python scripts/package_bundle.py bundles/roads_2d --out dist/
    python -m contextloss_monai.experiment.packaging --url https://HOST/roads_2d_v0.2.0.zip \
        --sha256 https://HOST/roads_2d_v0.2.0.zip.sha256 --bundle_dir ./downloaded   # verified, atomic
"""

import argparse
import sys

from contextloss_monai.experiment.packaging import package_bundle

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="bundle folder, e.g. bundles/roads_2d")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--no-weights", action="store_true", help="leave models/*.pt out")
    args = parser.parse_args()
    try:
        archive, digest = package_bundle(args.bundle, args.out, include_weights=not args.no_weights)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{archive}\nsha256 {digest}")
