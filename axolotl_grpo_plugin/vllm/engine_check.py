"""Is the vLLM engine alive, not just its HTTP front end? Asked once when a server starts.

`/health/` is answered by the server's HTTP process; the engine that generates runs in
worker processes behind it. When a worker dies (seen with vLLM on CPU: an unsupported
head size kills the engine on the first `/generate/`), `/health/` keeps answering 200
and `/generate/` never returns. So at start-up (autostart's `before_trainer`, a hand-started
server's check, each restart) a one-token `/generate/` with a short timeout must answer, and a
dead engine fails the launch in seconds. The paths named here are Axolotl 0.19's; 0.21's
native vLLM server answers `/health` and `/v1/completions` (`defaults.VLLM_*`). The watchdog
over the trainer's own generations is watch/liveness.py.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

from ..config.defaults import VLLM_ENGINE_CHECK_REQUEST, VLLM_GENERATE_PATH, VLLM_HEALTH_PATH
from .server import ServerError


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

ENGINE_CHECK_TIMEOUT = 120.0  # one token on a warm engine takes well under a second
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
