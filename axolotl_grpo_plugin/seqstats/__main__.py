"""`python -m axolotl_grpo_plugin.seqstats CONFIG` = `axolotl-grpo stats CONFIG`."""

import sys

from .cli import main


sys.exit(main())
