"""The embedded demo: GRPO visibly teaching a tiny pre-trained base the R1 format and to
finish its two-step reasoning, on CPU."""

from ..system.paths import packaged_config


DEMO_CONFIG = packaged_config("demo")
