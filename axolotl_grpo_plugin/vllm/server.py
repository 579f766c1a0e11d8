"""Start, watch and stop one vLLM server process, leaving nothing behind.

The server runs in its own session (process group), so one `killpg` reaches the
workers vLLM spawns, and a Ctrl-C in the terminal does not kill it half-way
through the trainer's own shutdown. It is stopped on every way out of the
owning process: an explicit `stop()`, `atexit`, SIGTERM/SIGINT (the torchrun
agent sends SIGTERM to every worker when one fails), and, on Linux, the kernel's
parent-death signal if the owner is SIGKILLed.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config.defaults import VLLM_HEALTH_PATH
from ..errors import EXIT_FAILED, PluginError
from ..system.processes import die_with_parent
from ..system.safe_files import UnsafePathError, open_nofollow
from . import group_leader
from .group_leader import GRACE_ENV
from .health import health_url, is_healthy, port_in_use


TAIL_LINES = 20
LOG = logging.getLogger("axolotl_grpo_plugin.vllm")
LOG_NAME = "vllm-server.log"  # the autostarted server's output, in output_dir


class ServerError(PluginError):
    """The server could not be started or kept up: cause, fix, and the log's last lines."""

    exit_code = EXIT_FAILED

    def __init__(self, cause: str, fix: str, log_path: Path | None = None, tail_lines: int = TAIL_LINES):
        self.cause, self.fix, self.log_path = cause, fix, log_path
        self.tail = read_tail(log_path, tail_lines) if log_path else []
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"vLLM server: {self.cause}", f"  fix: {self.fix}"]
        if self.log_path is not None:
            if self.tail:
                lines.append(f"  last {len(self.tail)} lines of {self.log_path}:")
                lines.extend(f"    | {line}" for line in self.tail)
            else:
                lines.append(f"  the server log {self.log_path} is empty")
        return "\n".join(lines)


@dataclass
class ServerSpec:
    """What to run and where it answers."""

    command: list[str]
    log_path: Path
    host: str
    port: int
    gpus: str = ""
    env: dict[str, str] | None = None  # the server's whole environment; None inherits ours

    @property
    def url(self) -> str:
        return health_url(self.host, self.port)


class VLLMServer:
    """One server process; `start()`, then `wait_healthy()`, and always `stop()`."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.process: subprocess.Popen | None = None
        self.retired = False  # stopped for good: the run is over (recovery.py restarts no more)
        self.started_at: float | None = None  # time.monotonic() at start()
        self._log = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, grace: float = 10.0) -> None:
        """Launch the command under the process-group leader; raise at once if the port is taken."""
        spec = self.spec
        if port_in_use(spec.host, spec.port):
            running = is_healthy(spec.url, timeout=1.0)
            raise ServerError(
                f"port {spec.port} on {spec.host} is already in use"
                + (f" by a server that answers {VLLM_HEALTH_PATH} (a vLLM server started by hand?)." if running else "."),
                f"stop what listens there (`lsof -i :{spec.port}` shows it), or pick a free port with `vllm.port` "
                "and `trl.vllm_server_port`"
                + (", or use that server: `grpo_plugin.vllm_autostart: false`" if running else ""),
            )
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._log = open_nofollow(spec.log_path, "wb", buffering=0)  # never through a planted symlink
        except UnsafePathError as exc:
            raise ServerError(f"{exc}: the server log would be written outside output_dir",
                              f"remove {spec.log_path} (or choose another `output_dir`)") from None
        env = dict(os.environ) if spec.env is None else dict(spec.env)
        env[GRACE_ENV] = str(grace)
        self.process = subprocess.Popen(
            [sys.executable, str(Path(group_leader.__file__).resolve()), *spec.command],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=functools.partial(die_with_parent, signal.SIGTERM, os.getpid()),
        )
        self.started_at = time.monotonic()
        _ACTIVE.append(self)

    def wait_healthy(self, timeout: float, report: Callable[[str], None] = LOG.info,
                     poll: float = 0.5, report_every: float = 15.0) -> float:
        """Block until /health/ answers; stop the server and raise if it exits or takes more than
        `timeout` seconds from its start (the trainer may have loaded its model meanwhile).
        Returns the seconds from its start to its first answer. `report` gets the waiting lines
        (the log by default: the caller decides what the user sees)."""
        assert self.process is not None and self.started_at is not None, "start() first"
        started = self.started_at
        next_report = started + report_every
        while True:
            if is_healthy(self.spec.url):
                return time.monotonic() - started
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise ServerError(f"the server process exited with code {code} during start-up.",
                                  fix_from_log(self.spec.log_path), self.spec.log_path)
            now = time.monotonic()
            if now - started > timeout:
                self.stop()
                raise ServerError(
                    f"no answer from {self.spec.url} within {timeout:.0f} s; the server was stopped.",
                    "read the log below; if it was still loading, raise `grpo_plugin.vllm_startup_timeout`",
                    self.spec.log_path,
                )
            if now >= next_report:
                next_report = now + report_every
                last = read_tail(self.spec.log_path, 1)
                where = f"GPU {self.spec.gpus}" if self.spec.gpus else "CPU"  # no GPUs: vLLM's CPU build
                report(f"waiting for the vLLM server on {where} at {self.spec.url}: "
                       f"{now - started:.0f} s of {timeout:.0f} s"
                       + (f"; log: {last[0][:160]}" if last else ""))
            time.sleep(poll)

    def retire(self) -> None:
        """Stop for good at the end of the run. A generation still in flight then (Axolotl's async
        trainer prefetches the next batch in a background thread) fails, and must not restart it."""
        self.retired = True
        self.stop()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after `grace` seconds."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        process, self.process = self.process, None
        if process is not None:
            pgid = process.pid  # session leader: its pid is the group id
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            _signal_group(pgid, signal.SIGKILL)
            if process.poll() is None:
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def fix_from_log(log_path: Path) -> str:
    """The most likely fix, from what the server printed before it died."""
    text = "\n".join(read_tail(log_path, 200))
    if "No module named 'vllm'" in text:
        return f"install vLLM: {INSTALL_HINT}"
    if "out of memory" in text.lower() or "OutOfMemoryError" in text:
        return "lower `vllm.gpu_memory_utilization` or `vllm.max_model_len`, or free the reserved GPU"
    if "Address already in use" in text:
        return "pick a free port with `vllm.port` and `trl.vllm_server_port`"
    return "read the log below; the same command run by hand is `axolotl vllm-serve CONFIG`"


# the package is not on an index: the extra is installed from a checkout
INSTALL_HINT = "pip install -e '.[vllm]' in your axolotl-grpo-plugin checkout (or pip install 'axolotl[vllm]==0.19.*')"


def read_tail(path: Path | None, lines: int) -> list[str]:
    """The last `lines` non-empty lines of a log that may be large, binary or missing."""
    if path is None:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 64 * 1024, 0))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


# --- teardown on every way out -------------------------------------------------

_ACTIVE: list[VLLMServer] = []
_PREVIOUS: dict[int, object] = {}
_INSTALLED = False


def stop_all() -> None:
    for server in list(_ACTIVE):
        server.stop()


def install_teardown() -> None:
    """atexit + SIGTERM/SIGINT/SIGHUP handlers that stop every server, then chain. A signal
    this process was started ignoring (`nohup`'s SIGHUP, a background job's SIGINT) gets no
    handler: training goes on when it comes, so the server must too."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still applies
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous != signal.SIG_IGN:
            _PREVIOUS[signum] = previous
            signal.signal(signum, _on_signal)


def _on_signal(signum, frame) -> None:
    stop_all()
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    else:  # SIG_DFL (an ignored signal gets no handler): die of it as before
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """Does any live (non-zombie) process remain in the group? Zombies hold no GPU
    memory, and in containers whose PID 1 does not reap them they never go away."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
