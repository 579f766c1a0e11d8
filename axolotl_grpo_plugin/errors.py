"""The one error type for problems a user can fix, its two renderings, and the exit codes.

Every check returns `Problem`s naming the key, the value and the fix, so a user
can repair a whole config in one pass. Every tool raises a subclass of
`PluginError`; the plugin's hooks and every CLI print it with `render()` and
exit with `exit_code`, so the same mistake reads the same everywhere.

Exit codes (every `python -m axolotl_grpo_plugin.X` tool):
  0  done / the config is valid
  1  a run-time failure (a server that died, a training run that failed)
  2  the inputs are wrong (config, dataset, flags): fix them and run again
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
PLUGIN_KEYS_DOC = "docs/plugin-keys.md"  # the `grpo_plugin:` keys' table (config/keys_table.py writes it)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, what, and how to fix it."""

    key: str
    value: Any
    message: str
    fix: str

    def block(self) -> str:
        return f"  - {self.key} = {short_repr(self.value)}\n      {self.message}\n      fix: {self.fix}"

    def line(self) -> str:
        message, fix = self.message.rstrip().rstrip("."), self.fix.rstrip().rstrip(".")
        return f"{self.key} = {short_repr(self.value)}: {message}. Fix: {fix}{'' if fix.endswith('?') else '.'}"


class PluginError(ValueError):
    """Problems a user can fix, raised all at once.

    Built from `Problem`s or, for a tool's one-off message, from text that
    already names the value and the fix. `style` picks the rendering: "lines"
    (one line per problem, for tools whose output is a report) or "block" (a
    heading and each problem with its fix, for config checks).
    """

    exit_code = EXIT_BAD_INPUT
    style = "lines"
    noun = "problem"

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            self.problems: list[Problem] = []
            self.text = problems
        else:
            self.problems = list(problems)
            self.text = ""
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.text
        if self.style == "lines":
            return "\n".join(p.line() for p in self.problems)
        body = "\n".join(p.block() for p in self.problems)
        return f"axolotl-grpo-plugin found {counted(len(self.problems), self.noun)}:\n{body}"


def counted(count: int, one: str, many: str | None = None) -> str:
    """`1 prompt`, `2 prompts`, `1 process`, `3 processes`: every count a user reads."""
    return f"{count} {one if count == 1 else many or one + 's'}"


class GRPOConfigError(PluginError):
    """The config cannot train: every problem found, so all are fixed in one go."""

    style = "block"
    noun = "config problem"


def short_repr(value: Any, limit: int = 120) -> str:
    text = "(not set)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
