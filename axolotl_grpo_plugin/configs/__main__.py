"""`python -m axolotl_grpo_plugin.configs` = `axolotl-grpo configs`."""

import sys

from ..commands.configs import main


sys.exit(main())
