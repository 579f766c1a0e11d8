"""`python -m axolotl_grpo_plugin.commands COMMAND ...` = `axolotl-grpo COMMAND ...`."""

import sys

from . import main


sys.exit(main())
