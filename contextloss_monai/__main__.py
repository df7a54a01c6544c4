"""``python -m contextloss_monai``: the ``contextloss`` command."""

import sys

from contextloss_monai.cli import main

sys.exit(main())
