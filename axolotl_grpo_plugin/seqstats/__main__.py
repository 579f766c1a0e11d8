"""`python -m axolotl_grpo_plugin.seqstats CONFIG` (= `python stats.py`, `axolotl-grpo stats`)."""

import sys

from .cli import main


sys.exit(main())
