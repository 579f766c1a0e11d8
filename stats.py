#!/usr/bin/env python
"""Prompt-token budgets for GRPO: `python stats.py CONFIG.yaml` (see --help).

A thin entry point; the work lives in `axolotl_grpo_plugin.seqstats`.
"""

import sys

from axolotl_grpo_plugin.commands.stats import main


if __name__ == "__main__":
    sys.exit(main())
