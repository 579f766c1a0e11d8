"""The published example's semantics, for tests and benchmarks only, never registered for training.

The five GSM8K rewards of the Axolotl cookbook's GRPO example
(axolotl-cookbook ``grpo/gsm8k_grpo.py``, trained by ``grpo/gsm8k.yaml``), which
corrected willccbb's gist. Rewritten here from what they compute, flaws
included: sections of the strict format cannot span lines, the xmlcount penalty
is unbounded, correctness compares strings, and anything but a chat list or a
string raises. Our rewards (``axolotl_grpo_rewards.gsm8k``) are compared with these by the
golden tests and by ``bench/bench_rewards.py``; each difference is listed in the
README's "Deviations" table.

One adaptation: a plain-string completion is read as its own text (the example
reads ``completion[0]["content"]`` and raises on a string), so that plain and
chat completions can both be compared.
"""

import re


STRICT = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\s?$")
SOFT = re.compile(r"<reasoning>.*?</reasoning>\s?<answer>.*?</answer>", re.DOTALL)
TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")


def text_of(completion):
    return completion if isinstance(completion, str) else completion[0]["content"]


def answer_of(text: str) -> str:
    """After the last ``<answer>``, up to the next ``</answer>``: the whole text when there is no tag."""
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def count_xml(text: str) -> float:
    score = 0.0
    for tag in TAGS:
        if text.count(tag) == 1:
            score += 0.125
    if text.count("</answer>") == 1:
        score -= (len(text.split("</answer>")[-1]) - 1) * 0.001
    return score


def correctness_reward_func(completions, answer, **kwargs) -> list[float]:
    return [2.0 if answer_of(text_of(c)) == gold else 0.0 for c, gold in zip(completions, answer)]


def int_reward_func(completions, **kwargs) -> list[float]:
    return [0.5 if answer_of(text_of(c)).isdigit() else 0.0 for c in completions]


def strict_format_reward_func(completions, **kwargs) -> list[float]:
    return [0.5 if STRICT.match(text_of(c)) else 0.0 for c in completions]


def soft_format_reward_func(completions, **kwargs) -> list[float]:
    return [0.25 if SOFT.match(text_of(c)) else 0.0 for c in completions]


def xmlcount_reward_func(completions, **kwargs) -> list[float]:
    return [count_xml(text_of(c)) for c in completions]


REWARD_FUNCS = {
    "correctness": correctness_reward_func,
    "int": int_reward_func,
    "strict_format": strict_format_reward_func,
    "soft_format": soft_format_reward_func,
    "xmlcount": xmlcount_reward_func,
}
