"""The tool cold start with the solution's text between the calls (gsm8k_tools.py says why).

`type: axolotl_grpo_plugin.transforms.gsm8k_tools_interleaved` in an SFT config; the registered
name `gsm8k_tools_interleaved` is the same rows for stats and check.
"""

from __future__ import annotations

from typing import Any

from .gsm8k_r1 import sft_strategy
from .gsm8k_tools import rows as tool_rows


def rows(cfg: Any = None, dataset_idx: int = 0, **kwargs: Any):
    """The registered loader: `gsm8k_tools`' rows, interleaved."""
    return tool_rows(cfg, dataset_idx, interleave=True)


def load(tokenizer, cfg, ds_cfg: dict | None = None, processor=None):
    """Axolotl's SFT strategy for `type: axolotl_grpo_plugin.transforms.gsm8k_tools_interleaved`."""
    return sft_strategy(tokenizer, cfg, ds_cfg, processor, rows(cfg)[0])
