"""The published GSM8K GRPO rewards, as they behave (willccbb's GRPO demo, Axolotl's example).

Exists only as the baseline for bench/bench_rewards.py and for the deviation
tests; it is not registered and must not be used for training: it raises on
plain-string, None or non-string completions, rejects multi-line reasoning, and
its xmlcount penalty is unbounded. Written from the published semantics:
completions are read as ``completion[0]["content"]``; soft format pays 0.25 as in
the Axolotl example (the original demo paid 0.5).
"""

import re


STRICT_PATTERN = r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$"
SOFT_PATTERN = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"


def extract_xml_answer(text: str) -> str:
    answer = text.split("<answer>")[-1]
    answer = answer.split("</answer>")[0]
    return answer.strip()


def correctness_reward_func(completions, answer, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    extracted_responses = [extract_xml_answer(r) for r in responses]
    return [2.0 if r == a else 0.0 for r, a in zip(extracted_responses, answer)]


def int_reward_func(completions, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    extracted_responses = [extract_xml_answer(r) for r in responses]
    return [0.5 if r.isdigit() else 0.0 for r in extracted_responses]


def strict_format_reward_func(completions, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    matches = [re.match(STRICT_PATTERN, r) for r in responses]
    return [0.5 if match else 0.0 for match in matches]


def soft_format_reward_func(completions, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    matches = [re.match(SOFT_PATTERN, r) for r in responses]
    return [0.25 if match else 0.0 for match in matches]


def count_xml(text) -> float:
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


def xmlcount_reward_func(completions, **kwargs) -> list[float]:
    contents = [completion[0]["content"] for completion in completions]
    return [count_xml(c) for c in contents]


REWARD_FUNCS = {
    "correctness": correctness_reward_func,
    "int": int_reward_func,
    "strict_format": strict_format_reward_func,
    "soft_format": soft_format_reward_func,
    "xmlcount": xmlcount_reward_func,
}
