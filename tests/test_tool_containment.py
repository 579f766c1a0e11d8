"""Tool containment (issue 49, item 3): a tool that hangs, raises, returns megabytes, prints or
kills its worker costs one counted error result; training (the caller) goes on, and TRL still
sees the tool's own name, signature and docstring."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from axolotl_grpo_plugin.tools import contain
from axolotl_grpo_rewards.tools import calculator


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def isolated(monkeypatch):
    """`contain` for a misbehaving fixture tool, run in a worker (closed after the test)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    made = []

    def make(name: str, **kwargs):
        module = importlib.import_module("misbehaving_tools")
        tool = contain(getattr(module, name), target=f"misbehaving_tools.{name}", **kwargs)
        made.append(tool)
        return tool

    yield make
    for tool in made:
        tool.tool_runner.close()


def test_trl_sees_the_tools_own_schema():
    from transformers.utils import get_json_schema

    assert get_json_schema(contain(calculator)) == get_json_schema(calculator)
    assert contain(calculator).__name__ == "calculator"


def test_the_builtin_calculator_runs_inline_and_counts_its_calls():
    tool = contain(calculator)
    assert tool.tool_runner is None
    assert tool(expression="6*7") == "42"
    assert tool(expression="import os") == "error: only numbers, + - * / ** ^ and parentheses are allowed"
    assert tool.tool_stats.take() == {"calls": 2, "errors": 1, "timeouts": 0}  # its error text is an answer, counted
    assert tool.tool_stats.take() == {"calls": 0, "errors": 0, "timeouts": 0}


@pytest.mark.parametrize("arguments", [{"expr": "1+1"}, {}, {"expression": "1", "extra": 2}])
def test_made_up_arguments_are_a_counted_error(arguments):
    tool = contain(calculator)
    result = tool(**arguments)
    assert set(result) == {"error"} and result["error"].startswith("TypeError: ")
    assert tool.tool_stats.take()["errors"] == 1


def test_a_hanging_tool_is_killed_at_its_budget_and_the_next_call_works(isolated):
    tool = isolated("hangs", timeout_s=1.0)
    tool(seconds=0)  # the worker's start-up is not the tool's time
    started = time.monotonic()
    assert tool(seconds=600) == {"error": "hangs did not answer within 1 s"}
    assert time.monotonic() - started < 5
    assert tool(seconds=0) == "woke up"
    assert tool.tool_stats.take() == {"calls": 3, "errors": 0, "timeouts": 1}


def test_a_tool_that_kills_its_worker_gets_a_fresh_one(isolated):
    tool = isolated("exits")
    result = tool(code=3)
    assert "tool worker died" in result["error"]
    echo = isolated("echo")
    assert echo(text="still here") == "still here"
    assert tool.tool_stats.take()["errors"] == 1


def test_exceptions_and_megabytes_become_error_results(isolated):
    assert isolated("raises")(message="bad input") == {"error": "ValueError: bad input"}
    assert isolated("huge")(megabytes=10) == {
        "error": "the tool returned 10,000,000 characters, over the 4,000-character limit"}


@pytest.mark.parametrize("value, expected", [
    (7, "7"), (2.5, "2.5"), ("text", "text"),
    (None, {"error": "the tool returned a NoneType, not text"}),
    ({"a": 1}, {"error": "the tool returned a dict, not text"}),
    (True, {"error": "the tool returned a bool, not text"}),
])
def test_only_text_and_numbers_reach_the_model(value, expected):
    def tool(x: int) -> str:
        """Returns a fixed value.

        Args:
            x: Ignored.
        """
        return value

    assert contain(tool)(x=1) == expected


def test_an_async_tool_runs_to_its_value_in_the_worker_under_the_same_budget(isolated):
    """TRL would await an `async def` tool in its own loop, with no time limit; contained, it is a
    plain function (TRL calls it as one) whose coroutine runs in the worker and is killed at the budget."""
    import inspect

    tool = isolated("awaits", timeout_s=1.0)
    assert not inspect.iscoroutinefunction(tool) and inspect.signature(tool).parameters.keys() == {"seconds"}
    assert tool(seconds=0) == "awaited 0 s"
    started = time.monotonic()
    assert tool(seconds=600) == {"error": "awaits did not answer within 1 s"}
    assert time.monotonic() - started < 5 and tool(seconds=0.01) == "awaited 0.01 s"
    assert tool.tool_stats.take() == {"calls": 3, "errors": 0, "timeouts": 1}


def test_the_models_arguments_never_make_the_wrapper_raise():
    """The calculator answers these with its error text; timing the call (its key) must not raise
    after it answered: an int too long to print, a list nested past Python's recursion limit."""
    import json
    import sys

    from axolotl_grpo_plugin.tools.containment import call_key

    nested = json.loads("[" * 900 + "1" + "]" * 900)

    def deep(levels, work):
        return work() if levels == 0 else deep(levels - 1, work)

    tool = contain(calculator)
    for expression in (10**5000, nested, "9" * 5_000_000):
        assert str(deep(sys.getrecursionlimit() - 850, lambda e=expression: tool(expression=e))).startswith("error:")
        assert len(deep(sys.getrecursionlimit() - 850, lambda e=expression: call_key({"expression": e}))) <= 1000  # bounded
    assert tool.tool_stats.take() == {"calls": 3, "errors": 3, "timeouts": 0}
    assert call_key({"expression": "6*7"}) == '{"expression": "6*7"}'  # a plain call keeps its readable key
