"""Config problems reported as one readable block instead of a traceback.

Every check returns `Problem`s naming the key, the value and the fix, so a user
can repair the whole config in one pass rather than one error per launch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, what, and how to fix it."""

    key: str
    value: Any
    message: str
    fix: str

    def render(self) -> str:
        value = _short_repr(self.value)
        return f"  - {self.key} = {value}\n      {self.message}\n      fix: {self.fix}"


class GRPOConfigError(ValueError):
    """Raised with every problem found, so all of them are fixed in one go."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(p.render() for p in self.problems)
        return f"axolotl-grpo-plugin found {count} config {noun}:\n{body}"


def _short_repr(value: Any, limit: int = 120) -> str:
    text = "(not set)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
