"""The entry point a tool worker process runs: `call(tool="package.module.function", arguments={...})`.

It rides on the rewards' killable worker (registry/isolation.py), whose contract is one value
in a list per call: the tool's result, returned as it is (containment.py judges it). An `async def`
tool runs here too, to its value (`asyncio.run`), one call at a time, under the same time budget."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..registry.imports import import_attribute


TARGET = "axolotl_grpo_plugin.tools.worker:call"
_loaded: dict[str, Any] = {}


def call(tool: str, arguments: dict) -> list:
    fn = _loaded.get(tool) or _loaded.setdefault(tool, import_attribute(tool))
    return [run_to_value(fn, arguments)]


def run_to_value(fn: Any, arguments: dict) -> Any:
    """`fn(**arguments)`; an `async def` tool is run to its value in an event loop of its own."""
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(**arguments))
    return fn(**arguments)
