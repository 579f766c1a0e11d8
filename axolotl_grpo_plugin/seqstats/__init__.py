"""Sequence-length budgets for GRPO: prompt tokens as the trainer sees them.

`prompt_token_stats(...)` / `report_from_config(path)` return a `BudgetReport`
(rows, prompt-token percentiles, longest prompts, recommended `vllm.max_model_len`,
and the rejected / truncated counts under the config's current value). The CLI is
`axolotl-grpo stats` at the repository root.
"""

from .api import prompt_token_stats, report_from_config
from .report import BudgetReport, LongPrompt, Verdict
from .sources import StatsError


__all__ = ["BudgetReport", "LongPrompt", "StatsError", "Verdict", "prompt_token_stats", "report_from_config"]
