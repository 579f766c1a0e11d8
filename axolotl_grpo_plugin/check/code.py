"""Code as a task: the sandbox the code rewards and transforms run programs in can run here."""

from __future__ import annotations

from ..config.run import Run
from ..errors import Problem
from ..system.launch import Launch


def check_code_sandbox(run: Run, launch: Launch) -> list[Problem]:
    """A run that scores or loads code gets the sandbox its config names, or is refused: where the
    kernel refuses a namespace the `local` backend says so, and nothing falls back to a weaker one."""
    from .. import sandbox

    return sandbox.problems(run.plugin.code_sandbox) if sandbox.uses_code(run) else []
