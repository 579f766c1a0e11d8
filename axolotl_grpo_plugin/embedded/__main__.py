"""`python -m axolotl_grpo_plugin.embedded` = `axolotl-grpo embedded`."""

import sys

from ..commands.embedded import main


sys.exit(main())
