"""MATH-style accuracy: is the model's ``\\boxed{}`` answer mathematically the gold one?

Built on math-verify (``parse`` both sides, then ``verify(gold, prediction)``,
gold first: its argument order). math-verify's own timeouts use
``signal.alarm``, which only works in the main thread, so they are switched off
here; sympy can still hang on adversarial LaTeX, which is why this reward is
marked ``reward_isolation = "process"``: the registry runs it in a worker that
is killed when a sample runs past its budget (see axolotl_grpo_plugin.isolation).

Cost is bounded before math-verify sees the text: it reads at most
MAX_PREDICTION_CHARS, from the last ``\\boxed{`` of the ``<answer>`` block (or of
the completion when there is none), or else the tail; the final answer is at the end.
"""

from __future__ import annotations

import logging

from .gsm8k import extract_answer
from .text import completion_text

CORRECT_REWARD = 1.0
MAX_PREDICTION_CHARS = 400
MAX_GOLD_CHARS = 1000

# The registry runs this reward in a killable worker process with these budgets.
reward_isolation = "process"
reward_sample_budget_s = 2.0

_quiet = False


def _math_verify():
    """Import math-verify lazily (it pulls in sympy) and silence its per-call warnings."""
    global _quiet
    import math_verify

    if not _quiet:
        # "Timeout is disabled ..." is logged on every call once we switch its alarms off.
        for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
            logging.getLogger(name).setLevel(logging.ERROR)
        _quiet = True
    return math_verify


def gold_text(gold: object) -> str | None:
    """The gold answer as math-verify reads it: a ``\\boxed{}`` or ``$...$`` stays, a bare one is wrapped."""
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(gold, str) or not gold.strip() or len(gold) > MAX_GOLD_CHARS:
        return None
    gold = gold.strip()
    if "\\boxed" in gold or "$" in gold:
        return gold
    return f"${gold}$"


def prediction_text(completion: object) -> str:
    """What math-verify reads: the last ``\\boxed{...}`` of the answer block (or of the whole
    completion when there is none), else that text's tail; at most MAX_PREDICTION_CHARS."""
    text = completion_text(completion)
    answer = extract_answer(text) or text
    start = answer.rfind("\\boxed{")
    if start != -1:
        answer = answer[start:]
    return answer[:MAX_PREDICTION_CHARS] if start != -1 else answer[-MAX_PREDICTION_CHARS:]


def score_one(completion: object, gold: object) -> float | None:
    """1.0 / 0.0 for one completion; None when the gold answer cannot be parsed (never 1.0)."""
    mv = _math_verify()
    gold_source = gold_text(gold)
    if gold_source is None:
        return None
    parsed_gold = mv.parse(gold_source, parsing_timeout=None)
    if not parsed_gold:
        return None
    prediction = prediction_text(completion)
    if not prediction:
        return 0.0
    parsed_prediction = mv.parse(prediction, parsing_timeout=None)
    if not parsed_prediction:
        return 0.0
    return CORRECT_REWARD if mv.verify(parsed_gold, parsed_prediction, timeout_seconds=None) else 0.0


def math_boxed_reward_func(completions, answer=None, **kwargs) -> list[float | None]:
    """1.0 when the final ``\\boxed{}`` answer equals the gold ``answer`` (math-verify), else 0.0.

    None ("not applicable" in TRL) for a sample whose gold answer is missing or
    unparseable, so a broken dataset row can never pay out.
    """
    if not isinstance(completions, (list, tuple)):
        return []
    n = len(completions)
    golds = list(answer) if isinstance(answer, (list, tuple)) else [None] * n
    golds += [None] * (n - len(golds))
    return [score_one(completion, gold) for completion, gold in zip(completions, golds)]


def warm_up() -> None:
    """Run one comparison, so that a fresh worker's lazy imports (sympy, the LaTeX parser) are not charged to a sample."""
    score_one("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}")


math_boxed_reward_func.reward_isolation = reward_isolation
math_boxed_reward_func.reward_sample_budget_s = reward_sample_budget_s
math_boxed_reward_func.reward_warmup = warm_up
