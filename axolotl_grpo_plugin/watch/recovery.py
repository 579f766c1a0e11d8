"""An autostarted vLLM server that dies or stalls is restarted; the run goes on.

Noticed by `liveness.call_with_deadline` (the server process exited: within a poll, not an
HTTP timeout; `/health/` stopped answering; or a generation outlived the watchdog, which
follows the slowest generation seen) and by the weight push failing against a dead server.
Then `ServerKeeper.recover` (vllm/restart.py): what is left of the server's process group is killed, its log
is kept as `vllm-server.restart-N.log`, the same command starts again with the same
environment, `/health/` and a one-token generation must answer, the trainer's current
weights are pushed whole, and the failed generation is asked again. So at most one
generation is redone and no completed step is lost; the weight-sync guard then compares
the next step's logprobs as usual. Each restart is a `vllm_restart` record in the rollout
log (the report lists them). Past `grpo_plugin.vllm_max_restarts` the run stops with the
server log's last lines. A server started by hand is not ours to restart: it fails as before.

`AXOLOTL_GRPO_PLUGIN_KILL_SERVER=generate:N` SIGKILLs the autostarted server as the Nth
generation is asked for, `push:N` halfway through the Nth weight push, `stall:N` SIGSTOPs it as
the Nth generation is asked for (comma-separated, e.g. `generate:2,push:3,stall:4`): a rehearsal of each failure
before a long run trusts the recovery (tests/test_vllm_cpu_e2e.py runs all three).
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from ..config.defaults import VLLM_HEALTH_PATH
from ..config.run import Run
from ..vllm import autostart
from ..vllm.engine_check import server_fix
from ..vllm.health import is_healthy
from ..vllm.restart import ServerKeeper
from ..vllm.server import LOG_NAME, ServerError
from .liveness import WatchdogClock, watch_generate


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

KILL_ENV = "AXOLOTL_GRPO_PLUGIN_KILL_SERVER"


def watch_push(generation: Any, health: str, keeper: ServerKeeper | None, log_path: Path | None = None) -> None:
    """A weight push that fails because the server died: our own server recovers (and so pushes
    again); one started by hand ends the run with its address and what to check."""
    push = generation.sync_weights
    if getattr(push, "_grpo_plugin_recovery", False):
        return

    @wraps(push)
    def sync_weights(*args, **kwargs):
        try:
            return push(*args, **kwargs)
        except Exception as exc:
            gone = keeper.died() if keeper is not None else None
            cause = gone or (None if is_healthy(health) else f"{health} stopped answering")
            if cause is None:
                raise
            cause = f"{cause} while weights were pushed ({type(exc).__name__})"
            if keeper is None:
                raise ServerError(f"{cause}: the server died or was stopped.", server_fix(log_path), log_path) from exc
            keeper.recover(cause)

    sync_weights._grpo_plugin_recovery = True  # type: ignore[attr-defined]
    generation.sync_weights = sync_weights


def reconnect_nccl(client: Any) -> Callable[[], None]:
    """After a restart, TRL's NCCL communicator (GPU server mode) must be set up again; the
    CPU build connects without one (cpu_sync.patch_trl_start), so there is nothing to do."""
    def reconnect() -> None:
        if getattr(client, "communicator", None) is None:
            return
        import torch

        client.communicator = None
        client.init_communicator(device=torch.cuda.current_device())
    return reconnect


def fail_fast(client: Any) -> None:
    """No blind retries of refused or broken connections to our own server: TRL's client retries
    them with backoff (2 + 4 + ... s, a minute in all), while here they mean the server died,
    which the restart handles at once. Retries on 5xx answers stay."""
    session = getattr(client, "session", None)
    for adapter in (getattr(session, "adapters", None) or {}).values():
        retries = getattr(adapter, "max_retries", None)
        if hasattr(retries, "new"):
            adapter.max_retries = retries.new(connect=0, read=0)


def kill_plan(env: dict[str, str] | os._Environ = os.environ) -> dict[str, int]:
    """`generate:2,push:3,stall:4` -> {"generate": 2, "push": 3, "stall": 4}; anything else is ignored."""
    plan: dict[str, int] = {}
    for part in (env.get(KILL_ENV) or "").split(","):
        what, _, number = part.strip().partition(":")
        if what in ("generate", "push", "stall") and number.isdigit():
            plan[what] = int(number)
    return plan


def rehearse_generate(client: Any, plan: dict[str, int], keeper: ServerKeeper) -> None:
    """SIGKILL (`generate`) or SIGSTOP (`stall`) the server's group as the client asks for the
    generation of that number (a small model's generation can end within milliseconds, so a
    timed kill could miss it; tests/test_vllm_recovery.py kills one mid-request)."""
    original = client.generate
    calls = [0]

    @wraps(original)
    def generate(*args, **kwargs):
        calls[0] += 1
        for what, sig in (("generate", signal.SIGKILL), ("stall", signal.SIGSTOP)):
            if plan.get(what) == calls[0]:
                LOG.warning("%s: %s the vLLM server as generation %d is asked for", KILL_ENV,
                            "killing" if what == "generate" else "stopping (SIGSTOP)", calls[0])
                keeper.kill(sig)
        return original(*args, **kwargs)

    client.generate = generate


def rehearse_push(generation: Any, client: Any, nth: int, keeper: ServerKeeper) -> None:
    """SIGKILL the server's group halfway through the nth weight push: right after its first
    request to the server was answered (the first layer group is in, the rest is not)."""
    original = generation.sync_weights
    calls = [0]

    @wraps(original)
    def sync_weights(*args, **kwargs):
        calls[0] += 1
        if calls[0] != nth:
            return original(*args, **kwargs)
        post = client.session.post

        def post_then_kill(*a, **k):
            client.session.post = post
            response = post(*a, **k)
            LOG.warning("%s: killing the vLLM server halfway through weight push %d", KILL_ENV, nth)
            keeper.kill()
            return response

        client.session.post = post_then_kill
        try:
            return original(*args, **kwargs)
        finally:
            client.session.post = post

    generation.sync_weights = sync_weights


def attach(run: Run, trainer: Any, record: Callable[[dict], Any] | None = None) -> bool:
    """Guard the trainer's vLLM server client (server mode, main process); with the server the
    plugin started, also restart it when it dies or stalls. True when the client is guarded."""
    generation = getattr(trainer, "vllm_generation", None)
    client = getattr(generation, "vllm_client", None)
    if client is None or not hasattr(client, "generate"):
        return False  # colocate, no vLLM, or a rank without a client
    settings = run.plugin
    server = autostart.own_server()
    if not settings.vllm_generate_timeout and server is None:
        return False  # 0: no watchdog; a death of our own server is still noticed and restarted
    health = f"{str(client.base_url).rstrip('/')}{VLLM_HEALTH_PATH}"
    log_path = Path(run.output_dir) / LOG_NAME if settings.vllm_autostart else None
    keeper, plan, pushes = None, kill_plan(), hasattr(generation, "sync_weights")
    if server is not None and pushes:
        keeper = ServerKeeper(server, float(settings.vllm_startup_timeout), settings.vllm_max_restarts,
                              push=generation.sync_weights, reconnect=reconnect_nccl(client), record=record,
                              step=lambda: int(getattr(getattr(trainer, "state", None), "global_step", 0)) + 1)
        fail_fast(client)
        if "push" in plan:
            rehearse_push(generation, client, plan["push"], keeper)
    if pushes:
        watch_push(generation, health, keeper, log_path)
    limit = float(settings.vllm_generate_timeout) or math.inf
    watch_generate(client, WatchdogClock(limit), health, log_path, keeper=keeper)
    if keeper is not None and ("generate" in plan or "stall" in plan):
        rehearse_generate(client, plan, keeper)  # outside the guard: a generation asked again counts once
    return True
