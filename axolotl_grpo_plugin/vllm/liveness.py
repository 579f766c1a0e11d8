"""Is the vLLM engine alive, not just its HTTP front end?

`/health/` is answered by the server's HTTP process; the engine that generates runs in
worker processes behind it. When a worker dies (seen with vLLM on CPU: an unsupported
head size kills the engine on the first `/generate/`), `/health/` keeps answering 200
and `/generate/` never returns. TRL's `VLLMClient.generate` posts with no timeout (1.9
and 1.14 alike: `requests` then waits forever; its retries only cover errors), so the
trainer hangs with nothing in its log. The paths named here are Axolotl 0.19's; 0.21's
native vLLM server answers `/health` and `/v1/completions` (`defaults.VLLM_*`). Two defences:

* `check_engine`: at start-up, a one-token `/generate/` with a short timeout, so a dead
  engine fails the launch in seconds (called from autostart's `before_model_load`);
* `guard_client`: every `/generate/` of the trainer's client runs under a watchdog
  (`grpo_plugin.vllm_generate_timeout` for the first, then a multiple of the slowest seen),
  watching `/health/` and the server process meanwhile. A server the plugin started is then
  restarted (recovery.py); one started by hand ends the run with what to check, not a hang.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from ..defaults import VLLM_ENGINE_CHECK_REQUEST, VLLM_GENERATE_PATH, VLLM_HEALTH_PATH
from .health import is_healthy
from .server import ServerError


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

ENGINE_CHECK_TIMEOUT = 120.0  # one token on a warm engine takes well under a second
HEALTH_EVERY = 10.0  # how often /health/ is read while a /generate/ is running
POLL_S = 0.25  # how often the server process is looked at meanwhile (a cheap waitpid)
STALL_FACTOR = 4.0  # after the first generation: a stall is FACTOR x the slowest one seen...
STALL_FLOOR_S = 60.0  # ...but never less than this
ENGINE_CHECK_REQUEST = VLLM_ENGINE_CHECK_REQUEST  # one token, in the installed server's request shape
GENERATE = VLLM_GENERATE_PATH  # `/generate/` (Axolotl 0.19) or `/v1/completions` (0.21)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def base_url(health: str) -> str:
    """http://host:port from the health URL."""
    return health.split(VLLM_HEALTH_PATH, 1)[0]


def one_token_generate(base: str, timeout: float) -> str | None:
    """None when a one-token /generate/ answers 200 within `timeout`; else what went wrong.
    A 4xx answer counts as alive: the engine was reached, the request shape was not accepted."""
    request = urllib.request.Request(f"{base}{GENERATE}", data=json.dumps(ENGINE_CHECK_REQUEST).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            return None
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            LOG.warning("vLLM engine probe: %s answered %s; not treated as a dead engine", GENERATE, exc.code)
            return None
        return f"{GENERATE} answered HTTP {exc.code}"
    except (TimeoutError, OSError) as exc:  # socket.timeout, URLError, refused, reset
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"a one-token {GENERATE} got no answer within {timeout:.0f} s"
        return f"{GENERATE} failed: {reason}"


def check_engine(health: str, log_path: Path | None, timeout: float | None = None) -> None:
    """Raise ServerError (with the log tail) when the engine behind a healthy /health/ is dead."""
    problem = one_token_generate(base_url(health), ENGINE_CHECK_TIMEOUT if timeout is None else timeout)
    if problem is None:
        return
    raise ServerError(
        f"{problem}, although {health} answers: the HTTP front end is up but the engine behind it "
        "is not generating (its worker process died or is stuck).",
        server_fix(log_path), log_path)


def server_fix(log_path: Path | None) -> str:
    where = "the log below" if log_path else "the server's own output (the terminal that runs `axolotl vllm-serve`)"
    return (f"read {where} for the worker's error (unsupported model shape, out of memory, ...), fix it and "
            "restart the server (a run resumes from its last checkpoint with `resume_from_checkpoint`); if "
            "generation is legitimately this slow, raise `grpo_plugin.vllm_generate_timeout`")


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


def guard_client(client: Any, clock: WatchdogClock, health: str, log_path: Path | None, keeper: Any = None) -> None:
    """Put `client.generate` (TRL's VLLMClient) under `call_with_deadline`, timed by `clock`.
    With a `keeper` (recovery.ServerKeeper: our own server), a failed generation restarts the
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
                keeper.recover(exc.cause)  # raises past grpo_plugin.vllm_max_restarts
                continue
            clock.seen(time.monotonic() - started)
            return result

    generate._grpo_plugin_deadline = True  # type: ignore[attr-defined]
    client.generate = generate
