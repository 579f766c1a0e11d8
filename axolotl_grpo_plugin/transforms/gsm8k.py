"""GSM8K rows -> GRPO prompts, for both shapes the example datasets use.

`openai/gsm8k` (config `main`) has `question` and `answer` ending in `#### N`;
`skrishna/gsm8k_only_answer` has `text` and `label`. Both become a chat prompt
carrying the R1 format instruction and `answer` = the normalised number, which is
what the GSM8K rewards compare against.

Against the Axolotl cookbook's `axo_gsm8k_transform` (grpo/gsm8k_grpo.py): the same
prompt by default (SYSTEM_PROMPT + "\n\n" + question in the user message), and the
same answer on every GSM8K row (thousands commas stripped; tested on all 8,792 rows).
Differences: the answer is a normalised number (`$18.50` -> `18.5`, `007` -> `7`,
where the cookbook only strips commas), a row without a number is an error naming it,
`openai/gsm8k` rows are read too, and a `data_source` column is added for routing.
"""

from __future__ import annotations

from typing import Any, Literal

from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT
from axolotl_grpo_rewards.text import normalize_number

from .common import SYSTEM_PROMPT_ROLE, loader_for


DATA_SOURCE = "gsm8k"
SHAPES = {"openai/gsm8k": ("question", "answer"), "skrishna/gsm8k_only_answer": ("text", "label")}


class GSM8KRowError(ValueError):
    """A row that has neither known column pair, or no parseable final answer."""


def build_prompt(question: str, system_prompt_role: Literal["user", "system"] = SYSTEM_PROMPT_ROLE) -> list[dict]:
    """The chat prompt: instruction before the question, or as a system message."""
    if system_prompt_role == "system":
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
        ]
    return [{"role": "user", "content": SYSTEM_PROMPT + "\n\n" + question}]


def final_answer(answer_text: Any) -> str:
    """The number after the last `####` (or the whole label), normalised."""
    raw = str(answer_text)
    if "####" in raw:
        raw = raw.rsplit("####", 1)[1]
    number = normalize_number(raw.strip())
    if number is None:
        raise GSM8KRowError(f"no final number in answer {raw.strip()[:80]!r}")
    return number


def transform_row(row: dict, system_prompt_role: Literal["user", "system"] = SYSTEM_PROMPT_ROLE) -> dict:
    """One dataset row -> `{"prompt", "answer", "data_source"}`."""
    for question_col, answer_col in SHAPES.values():
        if question_col in row and answer_col in row:
            return {
                "prompt": build_prompt(str(row[question_col]), system_prompt_role),
                "answer": final_answer(row[answer_col]),
                "data_source": DATA_SOURCE,
            }
    expected = " or ".join(f"({q!r}, {a!r}) as in {name}" for name, (q, a) in SHAPES.items())
    raise GSM8KRowError(
        f"gsm8k transform: row has columns {sorted(row)}; expected {expected}. "
        "Point `datasets[].path` at a GSM8K-shaped dataset or use another `type`."
    )


load = loader_for(transform_row)
