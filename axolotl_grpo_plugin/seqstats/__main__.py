"""`python -m axolotl_grpo_plugin.seqstats`: the same CLI as `python stats.py`."""

import sys

from .cli import main


sys.exit(main())
