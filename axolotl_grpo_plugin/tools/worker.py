"""The entry point a tool worker process runs: `call(tool="package.module.function", arguments={...})`.

It rides on the rewards' killable worker (registry/isolation.py), whose contract is one value
in a list per call: the tool's result, returned as it is (containment.py judges it)."""

from __future__ import annotations

from typing import Any

from ..registry.imports import import_attribute


TARGET = "axolotl_grpo_plugin.tools.worker:call"
_loaded: dict[str, Any] = {}


def call(tool: str, arguments: dict) -> list:
    fn = _loaded.get(tool) or _loaded.setdefault(tool, import_attribute(tool))
    return [fn(**arguments)]
