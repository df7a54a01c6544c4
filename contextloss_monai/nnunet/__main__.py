"""``python -m contextloss_monai.nnunet``: the same as ``contextloss nnunet``."""

import sys

from contextloss_monai.nnunet_command import main

sys.exit(main())
