"""Evaluate a checkpoint on held-out prompts with the rewards it trained on.

    from axolotl_grpo_plugin.evaluate import evaluate
    result = evaluate("configs/smoke.yaml", "outputs/smoke", split="test", samples=4, limit=64)
    result.accuracy, result.pass_at_k["pass@4"], result.format_compliance

CLI: `axolotl-grpo evaluate CONFIG --model DIR_OR_ID` (see --help).
"""

from ..sampling.prompts import EvalError, build_problems, load_config
from .core import EvalResult, evaluate
from .passk import paired_bootstrap, pass_at_k
from .results import compare, format_comparison, format_result, write_results


__all__ = [
    "EvalError",
    "EvalResult",
    "build_problems",
    "compare",
    "evaluate",
    "format_comparison",
    "format_result",
    "load_config",
    "paired_bootstrap",
    "pass_at_k",
    "write_results",
]
