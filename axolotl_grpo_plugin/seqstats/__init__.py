"""Sequence-length budgets for GRPO: prompt tokens as the trainer sees them (`axolotl-grpo stats`).

`prompt_token_stats(...)` / `report_from_config(path)` return a `BudgetReport`: percentiles, longest
prompts, recommended `vllm.max_model_len`, and what the config's current value rejects or truncates.
"""

from .api import prompt_token_stats, report_from_config
from .report import BudgetReport, LongPrompt, Verdict
from .sources import StatsError


__all__ = ["BudgetReport", "LongPrompt", "StatsError", "Verdict", "prompt_token_stats", "report_from_config"]
