"""`python -m axolotl_grpo_plugin.evaluate` = `axolotl-grpo evaluate`."""

import sys

from ..commands.evaluate import main


sys.exit(main())
