"""`python -m axolotl_grpo_plugin.score` = `axolotl-grpo score`."""

import sys

from ..commands.score import main


sys.exit(main())
