"""Countdown rows (`numbers`, `target`) -> GRPO prompts scored by the `countdown` reward.

The prompt asks for an equation inside the R1 `<answer>` block; the row keeps
`numbers` and `target` as columns, which TRL passes to the reward.
"""

from __future__ import annotations

from .common import SYSTEM_PROMPT_ROLE, loader_for
from .gsm8k import build_prompt


DATA_SOURCE = "countdown"
# Column names used by the published countdown datasets (e.g. Jiayi-Pan/Countdown-Tasks-3to4).
NUMBER_COLUMNS = ("numbers", "nums")


class CountdownRowError(ValueError):
    """A row without a list of numbers and an integer target."""


def question(numbers: list[int], target: int) -> str:
    listed = ", ".join(str(n) for n in numbers)
    return (
        f"Using the numbers [{listed}], create an equation that equals {target}. "
        "You can use + - * / and parentheses, and each number exactly once. "
        "Write only the equation in the answer block, for example (1 + 2) * 3."
    )


def transform_row(row: dict, system_prompt_role: str = SYSTEM_PROMPT_ROLE) -> dict:
    """One row -> `{"prompt", "numbers", "target", "data_source"}`."""
    numbers = next((row[c] for c in NUMBER_COLUMNS if c in row), None)
    target = row.get("target")
    try:
        numbers = [int(n) for n in numbers]
        target = int(target)
    except (TypeError, ValueError):
        raise CountdownRowError(
            f"countdown transform: row has columns {sorted(row)}; expected `numbers` (or `nums`), "
            f"a list of integers, and an integer `target` (got numbers={numbers!r}, target={target!r})."
        ) from None
    return {
        "prompt": build_prompt(question(numbers, target), system_prompt_role),
        "numbers": numbers,
        "target": target,
        "data_source": DATA_SOURCE,
    }


load = loader_for(transform_row)
