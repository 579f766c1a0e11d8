"""Containment for a tool the model calls: whatever the model writes and whatever the tool does,
the rollout gets a short text and training goes on.

TRL 1.9's tool loop catches a tool's exception (the model sees `{'error': ...}`), but nothing
bounds how long a tool runs, how much text it returns (it is appended to the prompt), or what it
does to the process (`os._exit`, a segfault in C code). `contain(fn)` returns a function with the
tool's own name, signature and docstring (TRL builds the tool's JSON schema from them) that

- runs the tool inline when it is bounded by construction (the built-in calculator), else in a
  killable worker process (registry/isolation.py) under `timeout_s`: a tool that hangs is killed,
  one that kills its worker gets a fresh one for the next call;
- returns text: a str as it is, a number as its text; an exception, a timeout, a result over
  `max_result_chars` or of another type becomes TRL's error form `{"error": "..."}`;
- counts calls, errors and timeouts in `fn.tool_stats` (for the `tools/*` metrics), and times each
  call (for the rollout log); a text that starts with `error:` (the built-in tools' answer to a
  bad call) is an error too.

Arguments the model made up (unknown names, a missing one) fail inside the call like any other
exception: an error result, counted, nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..registry.isolation import OK, TIMEOUT, IsolatedRunner
from .worker import TARGET, run_to_value


DEFAULT_TIMEOUT_S = 10.0
MAX_RESULT_CHARS = 4000
WORKER_STARTUP_S = 60.0  # a new worker imports the tool's module; not the tool's time
ERROR_TEXT = "error:"  # how the built-in tools answer a call they cannot serve (counted as an error)


MAX_TIMED_CALLS = 100_000  # calls timed until the rollout log takes them (a bound for runs without one)


MAX_KEY_CHARS = 512  # of a call's key; a longer one ends in its digest


def call_key(arguments: Any) -> str:
    """One call's arguments as a key, to pair a call's time with its record in the rollout log.
    Bounded and never raising: the arguments are the model's (a list nested 900 deep, an int of
    5,000 digits, megabytes of text)."""
    try:
        text = json.dumps(arguments, sort_keys=True, default=repr)
    except Exception:  # RecursionError, int-to-text limits, ...: all such calls share one key
        text = f"<unprintable {type(arguments).__name__}>"
    if len(text) > MAX_KEY_CHARS:
        text = text[:MAX_KEY_CHARS] + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()
    return text


@dataclass
class ToolStats:
    """Counts since the last `take()`, and each call's seconds since the last `take_seconds()`;
    thread-safe (TRL may call tools from several threads)."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    seconds: dict[str, deque] = field(default_factory=dict, repr=False)  # call_key -> seconds, in order
    _timed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str, arguments: Any = None, seconds: float | None = None) -> None:
        with self._lock:
            self.calls += 1
            self.errors += outcome == "error"
            self.timeouts += outcome == "timeout"
            if seconds is not None and self._timed < MAX_TIMED_CALLS:
                self.seconds.setdefault(call_key(arguments), deque()).append(seconds)
                self._timed += 1

    def take(self) -> dict[str, int]:
        with self._lock:
            counts = {"calls": self.calls, "errors": self.errors, "timeouts": self.timeouts}
            self.calls = self.errors = self.timeouts = 0
        return counts

    def take_seconds(self) -> dict[str, deque]:
        with self._lock:
            seconds, self.seconds, self._timed = self.seconds, {}, 0
        return seconds


def contain(fn: Callable, *, target: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
            max_result_chars: int = MAX_RESULT_CHARS) -> Callable:
    """`fn` contained; `target` (its import path, "package.module.function") runs it in a killable
    worker, None inline."""
    stats = ToolStats()
    runner = IsolatedRunner(TARGET) if target else None
    name = getattr(fn, "__name__", "tool")

    def run(arguments: dict) -> tuple[str, Any]:
        if runner is None:
            try:
                return OK, run_to_value(fn, arguments)
            except Exception as exc:  # the tool's failure on the model's input: an error result
                return "error", f"{type(exc).__name__}: {str(exc)[:200]}"
        (outcome,) = runner.score([{"tool": target, "arguments": arguments}], sample_budget_s=timeout_s,
                                  call_budget_s=WORKER_STARTUP_S + timeout_s)
        if outcome.kind == OK:
            return OK, outcome.value
        if outcome.kind == TIMEOUT:
            return "timeout", f"{name} did not answer within {timeout_s:g} s"
        return "error", outcome.detail.replace("reward worker", "tool worker")[:300]

    @functools.wraps(fn)  # a plain function even for an `async def` tool: TRL calls it as one
    def contained(**arguments):
        started = time.monotonic()
        kind, value = run(arguments)
        if kind == OK:
            kind, value = as_text(value, max_result_chars)
        # an inline tool is bounded by construction: an overrun is counted, its answer kept
        overran = kind == OK and runner is None and time.monotonic() - started > timeout_s
        said_error = kind == OK and value.startswith(ERROR_TEXT)  # the tool's own answer to a bad call
        stats.count("timeout" if overran else "error" if said_error else kind, arguments,
                    time.monotonic() - started)
        return value if kind == OK else {"error": value}

    contained.tool_stats = stats
    contained.tool_runner = runner
    return contained


def as_text(value: Any, max_chars: int) -> tuple[str, str]:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return "error", f"the tool returned a {type(value).__name__}, not text"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > max_chars:
        return "error", f"the tool returned {len(text):,} characters, over the {max_chars:,}-character limit"
    return OK, text
