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
* `guard_client`: every `/generate/` of the trainer's client runs under
  `grpo_plugin.vllm_generate_timeout`, watching `/health/` meanwhile; both failures end
  the run with the server log's last lines instead of a hang.
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

from ..config.run import Run
from ..defaults import VLLM_GENERATE_PATH, VLLM_HEALTH_PATH, VLLM_PROBE_REQUEST
from .health import is_healthy
from .server import LOG_NAME, ServerError


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

PROBE_TIMEOUT = 120.0  # one token on a warm engine takes well under a second
HEALTH_EVERY = 10.0  # how often /health/ is read while a /generate/ is running
PROBE_REQUEST = VLLM_PROBE_REQUEST  # one token, in the installed server's request shape
GENERATE = VLLM_GENERATE_PATH  # `/generate/` (Axolotl 0.19) or `/v1/completions` (0.21)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def base_url(health: str) -> str:
    """http://host:port from the health URL."""
    return health.split(VLLM_HEALTH_PATH, 1)[0]


def probe_generate(base: str, timeout: float) -> str | None:
    """None when a one-token /generate/ answers 200 within `timeout`; else what went wrong.
    A 4xx answer counts as alive: the engine was reached, the request shape was not accepted."""
    request = urllib.request.Request(f"{base}{GENERATE}", data=json.dumps(PROBE_REQUEST).encode(),
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
    problem = probe_generate(base_url(health), PROBE_TIMEOUT if timeout is None else timeout)
    if problem is None:
        return
    raise ServerError(
        f"{problem}, although {health} answers: the HTTP front end is up but the engine behind it "
        "is not generating (its worker process died or is stuck).",
        _fix(log_path), log_path)


def _fix(log_path: Path | None) -> str:
    where = "the log below" if log_path else "the server's own output (the terminal that runs `axolotl vllm-serve`)"
    return (f"read {where} for the worker's error (unsupported model shape, out of memory, ...), fix it and "
            "restart the server; if generation is legitimately this slow, raise "
            "`grpo_plugin.vllm_generate_timeout`")


def call_with_deadline(call: Callable[[], Any], timeout: float, health: str, log_path: Path | None,
                       health_every: float = HEALTH_EVERY) -> Any:
    """Run `call` in a daemon thread; return its result or raise its exception, or raise
    ServerError when it takes longer than `timeout` or the server stops answering /health/.
    A call that never returns is left blocked in its daemon thread; the run ends anyway."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="vllm-generate", daemon=True).start()
    started = time.monotonic()
    while not done.wait(min(health_every, max(timeout - (time.monotonic() - started), 0.01))):
        waited = time.monotonic() - started
        if waited >= timeout:
            raise ServerError(
                f"{GENERATE} gave no answer in {timeout:.0f} s"
                + (f" while {health} still answers: the engine behind it is not generating "
                   "(its worker process died or is stuck)." if is_healthy(health) else
                   f", and {health} does not answer either: the server is down."),
                _fix(log_path), log_path)
        if not is_healthy(health, timeout=min(5.0, health_every)):
            raise ServerError(f"the server stopped answering {health} during {GENERATE} "
                              f"(after {waited:.0f} s): it died or was stopped.", _fix(log_path), log_path)
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, Exception) and not is_healthy(health):
            raise ServerError(f"{GENERATE} failed ({type(error).__name__}: {error}) and {health} does not "
                              "answer: the server died.", _fix(log_path), log_path) from error
        raise error
    return outcome.get("value")


def guard_client(client: Any, timeout: float, health: str, log_path: Path | None) -> None:
    """Put `client.generate` (TRL's VLLMClient) under `call_with_deadline`."""
    original = client.generate
    if getattr(original, "_grpo_plugin_deadline", False):
        return

    @wraps(original)
    def generate(*args, **kwargs):
        return call_with_deadline(lambda: original(*args, **kwargs), timeout, health, log_path)

    generate._grpo_plugin_deadline = True  # type: ignore[attr-defined]
    client.generate = generate


def attach(run: Run, trainer) -> bool:
    """Guard the trainer's vLLM server client (server mode, main process); True when done."""
    client = getattr(getattr(trainer, "vllm_generation", None), "vllm_client", None)
    if client is None or not hasattr(client, "generate"):
        return False  # colocate, no vLLM, or a rank without a client
    settings = run.plugin
    if not settings.vllm_generate_timeout:
        return False
    health = f"{str(client.base_url).rstrip('/')}{VLLM_HEALTH_PATH}"
    log_path = None
    if settings.vllm_autostart:
        log_path = Path(run.output_dir) / LOG_NAME
    guard_client(client, float(settings.vllm_generate_timeout), health, log_path)
    return True
