"""`axolotl-grpo stats CONFIG` (= `axolotl-grpo stats`, `axolotl-grpo stats`)."""

import sys

from .cli import main


sys.exit(main())
