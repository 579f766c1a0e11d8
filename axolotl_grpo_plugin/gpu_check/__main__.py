"""`python -m axolotl_grpo_plugin.gpu_check` = `axolotl-grpo gpu-check`."""

import sys

from ..commands.gpu_check import main


sys.exit(main())
