"""`python -m axolotl_grpo_plugin.plan` = `axolotl-grpo plan`."""

import sys

from ..commands.plan import main


sys.exit(main())
