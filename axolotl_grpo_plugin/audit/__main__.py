"""`python -m axolotl_grpo_plugin.audit` = `axolotl-grpo audit`."""

import sys

from ..commands.audit import main


sys.exit(main())
