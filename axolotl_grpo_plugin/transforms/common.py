"""What every registered transform shares: the plugin's settings, and the prefill column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config.args import plugin_default
from ..config.run import read_plugin


# What a template that pre-fills the reasoning tag has already written (see docs/rewards-safety.md).
REASONING_PREFILL = "<reasoning>\n"
PREFILL_COLUMN = "reasoning_prefill"
# `grpo_plugin.system_prompt_role`'s default: the row functions' when called without the loader
SYSTEM_PROMPT_ROLE = plugin_default("system_prompt_role")


def with_prefill_column(cfg: Any, row_fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """`row_fn`, adding `reasoning_prefill` when `grpo_plugin.prefilled_reasoning_tag` is on.

    The rewards' containment layer prepends that text to each completion before
    scoring, so format rewards see the opening tag the chat template wrote.
    """
    if not read_plugin(cfg).prefilled_reasoning_tag:
        return row_fn

    def transform(row: dict) -> dict:
        out = row_fn(row)
        out[PREFILL_COLUMN] = REASONING_PREFILL
        return out

    return transform


def loader_for(transform_row: Callable[..., dict]) -> Callable[..., tuple]:
    """Axolotl's transform loader `load(cfg, dataset_idx)` for a `transform_row(row, system_prompt_role)`.

    It returns the row function (honouring `system_prompt_role` and
    `prefilled_reasoning_tag`) and map options that drop the original columns.
    """

    def load(cfg: Any = None, dataset_idx: int = 0, **kwargs: Any):
        role = read_plugin(cfg).system_prompt_role

        def transform(row: dict) -> dict:
            return transform_row(row, system_prompt_role=role)

        return with_prefill_column(cfg, transform), {"remove_columns": "__all__"}

    load.__doc__ = f"Axolotl's transform loader for {transform_row.__module__}: row function and map options."
    return load
