"""An autostarted vLLM server that dies or stalls is restarted; the run goes on.

Noticed by `liveness.call_with_deadline` (the server process exited: within a poll, not an
HTTP timeout; `/health/` stopped answering; or a generation outlived the watchdog, which
follows the slowest generation seen) and by the weight push failing against a dead server.
Then `ServerKeeper.recover`: what is left of the server's process group is killed, its log
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

import datetime
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from ..config.run import Run
from ..defaults import VLLM_HEALTH_PATH
from ..observe.rollout_log import RESTART_TYPE
from . import autostart
from .health import is_healthy, port_in_use
from .liveness import WatchdogClock, check_engine, guard_client, server_fix
from .server import LOG_NAME, TAIL_LINES, ServerError, VLLMServer, read_tail


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

KILL_ENV = "AXOLOTL_GRPO_PLUGIN_KILL_SERVER"
STOP_GRACE_S = 5.0  # a stalled server ignores SIGTERM: SIGKILL soon after
PORT_FREE_S = 60.0  # how long a killed server may take to free its port


class ServerKeeper:
    """Restarts one autostarted server, at most `max_restarts` times in a run."""

    def __init__(self, server: VLLMServer, startup_timeout: float, max_restarts: int,
                 push: Callable[[], Any], reconnect: Callable[[], Any] = lambda: None,
                 record: Callable[[dict], Any] | None = None, step: Callable[[], int] = lambda: 0):
        self.server, self.startup_timeout, self.max_restarts = server, startup_timeout, max_restarts
        self.push, self.reconnect, self.record, self.step = push, reconnect, record, step
        self.restarts = 0
        self.failed_at: float | None = None  # when a rehearsal made it fail (kill)
        self._lock = threading.Lock()

    @property
    def health(self) -> str:
        return self.server.spec.url

    @property
    def log_path(self) -> Path:
        return self.server.spec.log_path

    def died(self) -> str | None:
        """Why the server process is gone, or None while it runs."""
        process = self.server.process
        code = process.poll() if process is not None else None
        return None if code is None else f"the server process exited (code {code})"

    def kill(self, sig: int = signal.SIGKILL, wait_s: float = 10.0) -> None:
        """Send `sig` to the server's whole group (a rehearsal); after SIGKILL, wait until its
        process is gone. Noted, so the restart record says how long noticing took."""
        process = self.server.process
        if process is None:
            return
        self.failed_at = time.monotonic()
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            try:
                process.wait(timeout=wait_s)
            except Exception:  # noqa: BLE001 - recovery copes with a process still there
                pass

    def recover(self, cause: str) -> None:
        """Restart the server and push the current weights; ServerError past the cap or when
        the new server does not come up."""
        cause = cause.rstrip(".")
        if self.server.retired:  # the run is over; a background prefetch asked too late
            raise ServerError(f"{cause}, after the run had stopped its vLLM server.",
                              "nothing to do: training had ended; this generation's batch was never to be used")
        with self._lock:
            if self.restarts >= self.max_restarts:
                raise ServerError(
                    f"{cause}. It was restarted {self.restarts} time(s) in this run already, as many as "
                    f"`grpo_plugin.vllm_max_restarts` ({self.max_restarts}) allows, so the run stops.",
                    "read the log's last lines below (and the earlier vllm-server.restart-N.log) for why it "
                    "keeps dying (out of memory, a kernel crash, preemption); raise `grpo_plugin.vllm_max_restarts` "
                    "only once the cause is known", self.log_path)
            started = time.monotonic()
            noticed_s = None if self.failed_at is None else round(started - self.failed_at, 2)
            self.failed_at = None
            tail = read_tail(self.log_path, TAIL_LINES)
            number = self.restarts + 1
            LOG.warning("vLLM server: %s; restarting it (%d of at most %d), its log so far kept as %s",
                        cause, number, self.max_restarts, kept_log_name(number))
            self.server.stop(grace=STOP_GRACE_S)
            wait_port_free(self.server.spec.host, self.server.spec.port)
            keep_log(self.log_path, number)
            self.server.start()
            LOG.warning("vLLM server: restarted the vLLM server (pid %s); waiting for it", self.server.pid)
            self.server.wait_healthy(self.startup_timeout, report=LOG.info)
            check_engine(self.health, self.log_path)
            self.reconnect()
            self.push()
            self.restarts = number
            took = time.monotonic() - started
            LOG.warning("vLLM server: restarted and weights pushed in %.1f s; the generation is asked again", took)
            if self.record is not None:
                self.record({"type": RESTART_TYPE, "step": self.step(), "restart": number,
                             "max_restarts": self.max_restarts, "cause": cause, "took_s": round(took, 2),
                             "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                             "log": kept_log_name(number), "log_tail": tail[-5:]}
                            | ({"noticed_s": noticed_s} if noticed_s is not None else {}))


def wait_port_free(host: str, port: int, timeout: float = PORT_FREE_S) -> None:
    """A killed vLLM holds its port until its processes have let go of their memory (seconds
    for a large KV cache): start() would find it taken."""
    deadline = time.monotonic() + timeout
    while port_in_use(host, port) and time.monotonic() < deadline:
        time.sleep(0.2)


def kept_log_name(number: int) -> str:
    return f"vllm-server.restart-{number}.log"


def keep_log(log_path: Path, number: int) -> None:
    """The dead server's log, kept beside the new one (start() truncates the live name)."""
    try:
        os.replace(log_path, log_path.with_name(kept_log_name(number)))
    except OSError:
        pass  # nothing written yet, or not ours to move: the new log starts anyway


def guard_push(generation: Any, health: str, keeper: ServerKeeper | None, log_path: Path | None = None) -> None:
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
        guard_push(generation, health, keeper, log_path)
    limit = float(settings.vllm_generate_timeout) or math.inf
    guard_client(client, WatchdogClock(limit), health, log_path, keeper=keeper)
    if keeper is not None and ("generate" in plan or "stall" in plan):
        rehearse_generate(client, plan, keeper)  # outside the guard: a generation asked again counts once
    return True
