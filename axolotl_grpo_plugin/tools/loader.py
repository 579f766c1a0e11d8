"""The run's tools as TRL receives them: `grpo_plugin.tools` resolved, checked and contained.

A name is a registered tool (`calculator`; entry-point group `axolotl_grpo_plugin.tools`) or a
`module.function` import path, imported from the config's folder first, then the working folder
(names.import_folders, as for rewards). `problems` is what `check` and `axolotl train` refuse
before the model loads; `load` what the trainer gets. Registered tools are bounded by
construction and run inline; import-path tools run in a killable worker (containment.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.run import Run
from ..errors import Problem
from ..registry import TOOLS
from ..registry.imports import import_attribute
from .containment import contain
from .describe import schema_problem


KEY = "grpo_plugin.tools"
INSTEAD = "a `module.function` import path"


@dataclass(frozen=True)
class ToolSpec:
    key: str  # where the config names it: grpo_plugin.tools[i]
    name: str  # as written
    path: str  # the dotted import path
    registered: bool


def specs(run: Run) -> list[ToolSpec]:
    found = []
    for i, name in enumerate(run.plugin.tools):
        key = f"{KEY}[{i}]"
        if name in TOOLS:
            found.append(ToolSpec(key, name, TOOLS.targets[name].replace(":", "."), True))
        else:
            found.append(ToolSpec(key, name, name, False))
    return found


def problems(run: Run, folders: list[Path]) -> list[Problem]:
    """Each tool that does not resolve, that TRL cannot describe, or whose name another tool has;
    the environment class that does not import. `folders`: names.make_importable's."""
    from ..names import import_problem

    found, names = library_problems(run), {}
    for spec in specs(run):
        if not spec.registered and "." not in spec.name:
            found.append(Problem(spec.key, spec.name, TOOLS.unknown_message(spec.name),
                                 f"use a registered tool, or {INSTEAD}"))
            continue
        problem = import_problem(spec.key, spec.path, folders, f"use a registered tool: {', '.join(TOOLS.names())}")
        if problem:
            found.append(problem)
            continue
        fn = import_attribute(spec.path)
        if (why_and_fix := schema_problem(fn)) is not None:
            found.append(Problem(spec.key, spec.name, *why_and_fix))
            continue
        name = getattr(fn, "__name__", spec.name)
        if name in names:
            found.append(Problem(spec.key, spec.name, f"a tool named `{name}` is already listed ({names[name]}): "
                                 "TRL tells tools apart by their function's name.", "rename one of the functions"))
        names[name] = spec.key
    if run.plugin.environment:
        if (problem := import_problem("grpo_plugin.environment", run.plugin.environment, folders,
                                      "a class in a module beside the config")) is not None:
            found.append(problem)
    return found


def library_problems(run: Run) -> list[Problem]:
    """What TRL 1.9's GRPOTrainer refuses in its constructor, after the model loads: tools without
    `jmespath` or with transformers < 5.0, an environment with transformers < 5.2."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    from packaging.version import Version

    key, value = ("grpo_plugin.tools", run.plugin.tools) if run.plugin.tools else (
        "grpo_plugin.environment", run.plugin.environment)
    found = []
    if find_spec("jmespath") is None:
        found.append(Problem(key, value, "TRL parses the model's tool calls with the `jmespath` package, which "
                             "is not installed here.", "`pip install jmespath` (a dependency of "
                             "axolotl-grpo-plugin: reinstall it with its dependencies)"))
    try:
        installed = version("transformers")
    except PackageNotFoundError:
        return found
    need = "5.2.0" if run.plugin.environment else "5.0.0"
    if Version(installed) < Version(need):
        found.append(Problem(key, value, f"TRL's tool loop needs transformers {need} or newer (its chat "
                             f"response parsing); this environment has {installed}.",
                             f"`pip install 'transformers>={need}'`"))
    return found


def load(run: Run) -> list[Callable]:
    """The contained tools, in the config's order (call after `problems` found none)."""
    return [contain(import_attribute(spec.path), target=None if spec.registered else spec.path,
                    timeout_s=run.plugin.tool_timeout_s) for spec in specs(run)]


def schemas(run: Run) -> list[dict]:
    """The JSON schemas of the run's tools, as TRL's trainer renders them into every prompt (the
    chat template gets the functions; transformers describes each with `get_json_schema`)."""
    if not run.plugin.tools:
        return []
    from transformers.utils import get_json_schema

    return [get_json_schema(import_attribute(spec.path)) for spec in specs(run)]


def environment_factory(run: Run) -> Any:
    """The class TRL instantiates once per rollout, or None."""
    return import_attribute(run.plugin.environment) if run.plugin.environment else None
