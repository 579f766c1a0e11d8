"""`python -m axolotl_grpo_plugin.check` = `axolotl-grpo check`."""

import sys

from ..commands.check import main


sys.exit(main())
