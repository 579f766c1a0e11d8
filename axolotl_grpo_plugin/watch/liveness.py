"""The watchdog over each vLLM server `/generate/` of the trainer: a hang becomes an error.

TRL's `VLLMClient.generate` posts with no timeout (1.9 and 1.14 alike: `requests` then waits
forever; its retries only cover errors), so an engine that died behind a `/health/` still
answering 200 (vllm/engine_check.py) hangs the trainer with nothing in its log. `watch_generate`
runs every `/generate/` of the trainer's client under a deadline
(`grpo_plugin.vllm_generate_timeout` for the first, then a multiple of the slowest seen),
watching `/health/` and the server process meanwhile. A server the plugin started is then
restarted (watch/recovery.py, vllm/restart.py); one started by hand ends the run with what to
check, not a hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from ..vllm.engine_check import GENERATE, server_fix
from ..vllm.health import is_healthy
from ..vllm.server import ServerError


HEALTH_EVERY = 10.0  # how often /health/ is read while a /generate/ is running
POLL_S = 0.25  # how often the server process is looked at meanwhile (a cheap waitpid)
STALL_FACTOR = 4.0  # after the first generation: a stall is FACTOR x the slowest one seen...
STALL_FLOOR_S = 60.0  # ...but never less than this


class WatchdogClock:
    """How long a generation may take: `limit` (grpo_plugin.vllm_generate_timeout) until one has
    finished, then `factor` x the slowest seen (at least `floor` s, at most `limit`), so a stall
    is found in minutes on a run whose generations take seconds."""

    def __init__(self, limit: float, factor: float = STALL_FACTOR, floor: float = STALL_FLOOR_S):
        self.limit, self.factor, self.floor = limit, factor, floor
        self.slowest: float | None = None

    def timeout(self) -> float:
        if self.slowest is None or self.limit == float("inf"):  # inf: no watchdog (the key at 0)
            return self.limit
        return min(self.limit, max(self.floor, self.factor * self.slowest))

    def seen(self, seconds: float) -> None:
        self.slowest = seconds if self.slowest is None else max(self.slowest, seconds)


def call_with_deadline(call: Callable[[], Any], timeout: float, health: str, log_path: Path | None,
                       health_every: float = HEALTH_EVERY, died: Callable[[], str | None] | None = None) -> Any:
    """Run `call` in a daemon thread; return its result or raise its exception, or raise
    ServerError when it takes longer than `timeout`, the server stops answering /health/, or
    `died()` says why the server process is gone (read every POLL_S: seconds, not a timeout).
    A call that never returns is left blocked in its daemon thread; the run goes on without it."""
    outcome: dict[str, Any] = {}
    done = threading.Event()
    died = died or (lambda: None)

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="vllm-generate", daemon=True).start()
    started = time.monotonic()
    next_health = started + health_every
    while not done.wait(min(POLL_S, max(timeout - (time.monotonic() - started), 0.01))):
        now = time.monotonic()
        waited = now - started
        gone = died()
        if gone:
            raise ServerError(f"{gone} during {GENERATE} (after {waited:.1f} s).", server_fix(log_path), log_path)
        if waited >= timeout:
            raise ServerError(
                f"{GENERATE} gave no answer in {timeout:.0f} s"
                + (f" while {health} still answers: the engine behind it is not generating "
                   "(its worker process died or is stuck)." if is_healthy(health) else
                   f", and {health} does not answer either: the server is down."),
                server_fix(log_path), log_path)
        if now >= next_health:
            next_health = now + health_every
            if not is_healthy(health, timeout=min(5.0, health_every)):
                raise ServerError(f"the server stopped answering {health} during {GENERATE} "
                                  f"(after {waited:.0f} s): it died or was stopped.", server_fix(log_path), log_path)
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, Exception):
            gone = died() or (None if is_healthy(health) else f"{health} does not answer: the server died")
            if gone:
                raise ServerError(f"{GENERATE} failed ({type(error).__name__}: {error}) and {gone}.",
                                  server_fix(log_path), log_path) from error
        raise error
    return outcome.get("value")


def watch_generate(client: Any, clock: WatchdogClock, health: str, log_path: Path | None, keeper: Any = None) -> None:
    """Put `client.generate` (TRL's VLLMClient) under `call_with_deadline`, timed by `clock`.
    With a `keeper` (vllm/restart.ServerKeeper: our own server), a failed generation restarts the
    server and is asked again; without one it ends the run."""
    original = client.generate
    if getattr(original, "_grpo_plugin_deadline", False):
        return

    @wraps(original)
    def generate(*args, **kwargs):
        while True:
            started = time.monotonic()
            try:
                result = call_with_deadline(lambda: original(*args, **kwargs), clock.timeout(), health, log_path,
                                            health_every=HEALTH_EVERY, died=keeper.died if keeper is not None else None)
            except ServerError as exc:
                if keeper is None:
                    raise
                # a generation cut at the deadline took at least that long: the one asked again gets
                # `factor` x it, so a server that is only slow (cores shared with another job) finishes
                # instead of being restarted until the cap
                clock.seen(time.monotonic() - started)
                keeper.recover(exc.cause)  # raises past grpo_plugin.vllm_max_restarts
                continue
            clock.seen(time.monotonic() - started)
            return result

    generate._grpo_plugin_deadline = True  # type: ignore[attr-defined]
    client.generate = generate
