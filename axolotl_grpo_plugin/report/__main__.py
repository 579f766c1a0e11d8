"""`python -m axolotl_grpo_plugin.report` = `axolotl-grpo report`."""

import sys

from ..commands.report import main


sys.exit(main())
