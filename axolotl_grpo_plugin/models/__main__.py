"""`python -m axolotl_grpo_plugin.models` = `axolotl-grpo fetch-model`."""

import sys

from ..commands.fetch_model import main


sys.exit(main())
