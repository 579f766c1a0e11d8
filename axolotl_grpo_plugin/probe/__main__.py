"""`python -m axolotl_grpo_plugin.probe` = `axolotl-grpo probe`."""

import sys

from ..commands.probe import main


sys.exit(main())
