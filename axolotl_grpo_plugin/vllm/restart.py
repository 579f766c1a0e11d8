"""Restart the autostarted vLLM server the same way it started, and push the trainer's weights.

`ServerKeeper.recover` is called by the watchdogs (watch/liveness.py, watch/recovery.py) when
the server died or stalled: what is left of its process group is killed, its log is kept as
`vllm-server.restart-N.log`, the same command starts again with the same environment,
`/health/` and a one-token generation must answer, the trainer's current weights are pushed
whole, and each restart is a `vllm_restart` record in the rollout log. Past
`grpo_plugin.vllm_max_restarts` the run stops with the server log's last lines.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..rollouts.log import KIND_FIELD, VLLM_RESTART
from .engine_check import check_engine
from .health import port_in_use
from .server import TAIL_LINES, ServerError, VLLMServer, read_tail


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

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
                self.record({KIND_FIELD: VLLM_RESTART, "step": self.step(), "restart": number,
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
