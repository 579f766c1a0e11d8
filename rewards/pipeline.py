"""Rewards for checking the training pipeline, not a task: `char_variety` varies on a random-weight
model, for the CPU vLLM configs (`axolotl_grpo_rewards.pipeline.char_variety`).

The embedded tiny model is random: every task reward (correctness, format) is 0 for
every completion, so GRPO's advantages and the gradient are exactly 0 and the
weights never change, and a weight push would have nothing to show. The share of
distinct characters in a completion differs from one random completion to the next
(a digit share was 0 for a whole group too often), so the group advantages are non-zero,
the model moves, and vLLM's logprobs only match the trainer's when the new weights reached
the server. It scores no task: use it for
pipeline checks only.
"""

from __future__ import annotations


def _text(completion: object) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        return content if isinstance(content, str) else ""
    return ""


def char_variety(completions, **kwargs) -> list[float]:
    """Distinct characters / characters of each completion, in [0, 1]; 0.0 for empty or
    malformed completions. Linear in the text's length, never raises.

    Examples:
        >>> char_variety(["aaaa", "abcd", ""])
        [0.25, 1.0, 0.0]
    """
    if not isinstance(completions, list):
        return []
    scores = []
    for completion in completions:
        text = _text(completion)
        scores.append(len(set(text)) / len(text) if text else 0.0)
    return scores
