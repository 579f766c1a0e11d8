"""`python -m axolotl_grpo_plugin.demo` = `axolotl-grpo demo`."""

import sys

from ..commands.demo import main


sys.exit(main())
