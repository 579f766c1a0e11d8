"""`python -m axolotl_grpo_plugin.seqstats` = `axolotl-grpo stats`."""

import sys

from ..commands.stats import main


sys.exit(main())
