"""The tools the model calls in its rollouts (`grpo_plugin.tools`, `environment`; docs/tools.md)."""

from __future__ import annotations

from ..config.run import Run
from ..errors import Problem
from ..launch import Launch


def check_tools(run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.tools` and `environment` import, and TRL can describe each tool."""
    from ..names import import_folders
    from ..tools import loader, trainer

    return loader.problems(run, import_folders(run.config_path)) if trainer.wanted(run) else []


def check_tool_template(run: Run, launch: Launch) -> list[Problem]:
    """With tools, a chat template TRL can read tool calls back from."""
    from ..tools import trainer
    from ..tools.describe import config_template_problem

    if not trainer.wanted(run) or (why := config_template_problem(run)) is None:
        return []
    message, _, fix = why.partition("; fix: ")
    return [Problem("chat_template", run.chat_template or "tokenizer_default", message + ".", fix)]
