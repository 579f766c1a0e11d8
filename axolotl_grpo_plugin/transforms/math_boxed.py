"""MATH-style rows -> GRPO prompts scored by the `math_boxed` reward (registered transform `math`).

Accepts `problem` with `answer` (MATH-500 style) or with `solution`, whose last
`\\boxed{...}` is the gold answer (hendrycks MATH style).
"""

from __future__ import annotations

from .common import SYSTEM_PROMPT_ROLE, loader_for
from .gsm8k import build_prompt


DATA_SOURCE = "math"
INSTRUCTION = "Put the final answer as \\boxed{...} inside the answer block."


class MathRowError(ValueError):
    """A row without a problem, or without a gold answer."""


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces matched), or None."""
    start = text.rfind("\\boxed{")
    if start == -1:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def transform_row(row: dict, system_prompt_role: str = SYSTEM_PROMPT_ROLE) -> dict:
    """One row -> `{"prompt", "answer", "data_source"}`."""
    problem = row.get("problem")
    answer = row.get("answer")
    if not (isinstance(answer, str) and answer.strip()) and isinstance(row.get("solution"), str):
        answer = last_boxed(row["solution"])
    if not isinstance(problem, str) or not isinstance(answer, str) or not answer.strip():
        raise MathRowError(
            f"math transform: row has columns {sorted(row)}; expected `problem` and either `answer` "
            "or a `solution` ending in \\boxed{...}."
        )
    return {
        "prompt": build_prompt(f"{problem}\n\n{INSTRUCTION}", system_prompt_role),
        "answer": answer.strip(),
        "data_source": DATA_SOURCE,
    }


load = loader_for(transform_row)
