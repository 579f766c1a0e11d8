"""Run a reward in a worker process that can be killed when it runs past its budget.

Python cannot stop a thread, and ``signal.alarm`` only works in the main thread
of the main interpreter, so a reward that may blow up (a symbolic verifier on
adversarial LaTeX, an entry-point reward we cannot vouch for) runs here: one
persistent worker subprocess per reward and process, fed one sample at a time,
waited on with ``Connection.poll(timeout)``, which works from any thread. A
sample that is not answered within its sample budget is a timeout; the worker is
killed (it may be stuck in C code, e.g. big-integer arithmetic, which neither an
exception nor a signal interrupts) and a fresh one takes the remaining samples.
Samples that the call budget leaves no time for, or cuts short of their own
budget, were not scored: their outcome is a timeout marked ``unscored``, which the
containment scores None (TRL's "no score"), never as a wrong answer.

The worker belongs to the process, not to the thread that first scored: it is forked
from the process's long-lived spawner thread (processes.popen_owned_by_process), so
PR_SET_PDEATHSIG kills it when the trainer process dies, not when that thread ends. It runs
in its own session and ignores SIGINT, so Ctrl-C on the trainer prints no worker traceback
(the worker goes when the trainer goes). Each sample is pickled on its own: one that cannot
be pickled (here) or unpickled (there) scores as an error and the worker keeps going.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ..system.processes import die_with_parent, popen_owned_by_process
from .imports import import_attribute


# Starting a worker imports the reward (math-verify pulls in sympy: about a second).
STARTUP_BUDGET_S = 60.0
# Outcome kinds of one sample.
OK, ERROR, TIMEOUT = "ok", "error", "timeout"


@dataclass
class SampleOutcome:
    kind: str
    value: Any = None
    detail: str = ""
    # a TIMEOUT that is the call budget's, not the sample's: it never had its full sample budget
    unscored: bool = False


CALL_BUDGET_SPENT = "call budget spent"


class _CallBudgetSpent(TimeoutError):
    """No time left in the call to start a worker."""


@dataclass
class IsolatedRunner:
    """A killable worker for the reward at ``target`` (``module:attribute``)."""

    target: str
    _conn: Any = field(default=None, repr=False)
    _proc: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def score(self, samples: list[dict], sample_budget_s: float, call_budget_s: float) -> list[SampleOutcome]:
        """One outcome per sample (its keyword arguments), within both budgets."""
        with self._lock:
            return self._score(samples, sample_budget_s, call_budget_s)

    def _score(self, samples, sample_budget_s, call_budget_s):
        outcomes: list[SampleOutcome | None] = [None] * len(samples)
        deadline = time.monotonic() + call_budget_s
        next_index = 0
        while next_index < len(samples):
            try:
                self._ensure_worker(deadline)
                blobs = [_pickled(sample) for sample in samples[next_index:]]
                self._conn.send_bytes(pickle.dumps((self.target, next_index, blobs)))
            except _CallBudgetSpent as spent:  # the call's time went to earlier samples: the rest are not scored
                self.close()
                _unscored(outcomes, next_index, str(spent))
                return outcomes
            except Exception as exc:  # cannot start or feed a worker: score nothing as safe
                detail = f"reward worker unavailable: {type(exc).__name__}: {exc}"
                self.close()
                for i in range(next_index, len(samples)):
                    outcomes[i] = SampleOutcome(ERROR, detail=detail)
                return outcomes
            next_index = self._collect(outcomes, next_index, sample_budget_s, deadline)
        return outcomes

    def _collect(self, outcomes, index, sample_budget_s, deadline) -> int:
        """Read results from `index` on; returns where to resume after a kill."""
        while index < len(outcomes):
            wait = min(sample_budget_s, deadline - time.monotonic())
            if wait <= 0 or not self._conn.poll(wait):
                self.close()
                if wait < sample_budget_s:  # the call's deadline, not this sample, ran out
                    _unscored(outcomes, index)
                    return len(outcomes)
                outcomes[index] = SampleOutcome(TIMEOUT, detail=f"over the {sample_budget_s:g}s sample budget")
                if time.monotonic() >= deadline:
                    _unscored(outcomes, index + 1)
                    return len(outcomes)
                return index + 1
            try:
                got_index, kind, value, detail = self._conn.recv()
            except (EOFError, OSError) as exc:  # the worker died (e.g. out of memory)
                self.close()
                outcomes[index] = SampleOutcome(ERROR, detail=f"reward worker died: {exc!r}")
                return index + 1
            outcomes[got_index] = SampleOutcome(kind, value, detail)
            index = got_index + 1
        return index

    def _ensure_worker(self, deadline: float) -> None:
        """A live worker that has imported (and warmed up) the reward; startup is not sample time."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close()
        if deadline <= time.monotonic():
            raise _CallBudgetSpent(CALL_BUDGET_SPENT)
        self._proc, self._conn = start_worker(self.target)
        wait = min(STARTUP_BUDGET_S, deadline - time.monotonic())
        if wait <= 0 or not self._conn.poll(wait):
            self.close()
            if wait < STARTUP_BUDGET_S:
                raise _CallBudgetSpent(f"{CALL_BUDGET_SPENT} (the reward worker was not ready within the {max(wait, 0):.1f}s left)")
            raise TimeoutError(f"reward worker not ready within {max(wait, 0):.0f}s")
        ready = self._conn.recv()
        if ready != "ready":
            self.close()
            raise RuntimeError(f"reward worker could not load {self.target}: {ready}")

    def close(self) -> None:
        """Kill the worker (it may be stuck in C code, so no polite shutdown)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.kill()
            proc.wait(timeout=5)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _unscored(outcomes: list, start: int, detail: str = CALL_BUDGET_SPENT) -> None:
    for i in range(start, len(outcomes)):
        outcomes[i] = SampleOutcome(TIMEOUT, detail=detail, unscored=True)


def start_worker(target: str) -> tuple[subprocess.Popen, _Duplex]:
    """A fresh ``python -m axolotl_grpo_plugin.registry.isolation FD_IN FD_OUT TARGET`` and our end of its pipes.

    A plain subprocess, not multiprocessing: ``spawn`` re-imports the parent's
    ``__main__`` (under Axolotl, the whole training CLI) and ``fork`` is unsafe in
    a process that already runs threads. The child sees the parent's ``sys.path``.
    """
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
    try:
        proc = popen_owned_by_process(
            [sys.executable, "-m", "axolotl_grpo_plugin.registry.isolation", str(to_child_r), str(from_child_w),
             target, str(os.getpid())],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            env=env,
            close_fds=True,
            start_new_session=True,  # Ctrl-C reaches the trainer, not the worker
        )
    except BaseException:
        for fd in (to_child_w, from_child_r):
            os.close(fd)
        raise
    finally:
        os.close(to_child_r)
        os.close(from_child_w)
    return proc, _Duplex(Connection(from_child_r), Connection(to_child_w))


class _Duplex:
    """Two one-way pipe ends used as one connection."""

    def __init__(self, incoming: Connection, outgoing: Connection):
        self.incoming, self.outgoing = incoming, outgoing

    def send_bytes(self, data: bytes) -> None:
        self.outgoing.send_bytes(data)

    def send(self, obj: Any) -> None:
        self.outgoing.send(obj)

    def poll(self, timeout: float) -> bool:
        return self.incoming.poll(timeout)

    def recv(self) -> Any:
        return self.incoming.recv()

    def recv_bytes(self) -> bytes:
        return self.incoming.recv_bytes()

    def close(self) -> None:
        self.incoming.close()
        self.outgoing.close()


def _import_target(target: str):
    obj = import_attribute(target)
    return getattr(obj, "__wrapped__", obj)


def _pickled(sample: Any) -> bytes | str:
    """The sample's pickle, or (a str) why it has none: that sample is an error, not the call."""
    try:
        return pickle.dumps(sample)
    except Exception as exc:  # noqa: BLE001 - a lambda, a lock, a generator in the row...
        return f"the sample cannot be sent to the reward worker: {type(exc).__name__}: {str(exc)[:200]}"


def _unpickled(blob: bytes | str) -> tuple[Any, str]:
    if isinstance(blob, str):
        return None, blob
    try:
        return pickle.loads(blob), ""
    except BaseException as exc:  # noqa: BLE001 - a class the worker cannot import, a failing __reduce__
        return None, f"the reward worker cannot unpickle the sample: {type(exc).__name__}: {str(exc)[:200]}"


def _worker_main(conn, target: str, parent_pid: int | None = None) -> None:
    """Load the raw reward, say "ready", then score each sample and send (index, kind, value, detail)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's; we go when it goes
    # the kernel kills this worker when the trainer process dies, even mid-hang
    die_with_parent(signal.SIGKILL, parent_pid)
    try:
        _serve(conn, target)
    except (EOFError, OSError, KeyboardInterrupt):  # the trainer closed our pipes or is gone
        return


def _serve(conn, target: str) -> None:
    functions: dict[str, Any] = {}
    try:
        fn = functions[target] = _import_target(target)
        warmup = getattr(fn, "reward_warmup", None)
        if callable(warmup):
            warmup()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which scores safely
        conn.send(f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    conn.send("ready")
    while True:
        target, start, blobs = pickle.loads(conn.recv_bytes())
        for offset, blob in enumerate(blobs):
            index = start + offset
            sample, problem = _unpickled(blob)
            if problem:
                conn.send((index, ERROR, None, problem))
                continue
            try:
                fn = functions.get(target) or functions.setdefault(target, _import_target(target))
                out = fn(**sample)
                if not isinstance(out, (list, tuple)) or len(out) != 1:
                    kind, value, detail = "contract", None, f"returned {_describe(out)} for 1 completion"
                else:
                    kind, value, detail = OK, out[0], ""
                    pickle.dumps(value)
            except BaseException as exc:  # noqa: BLE001 - anything a reward raises is contained
                kind, value, detail = ERROR, None, f"{type(exc).__name__}: {str(exc)[:200]}"
            conn.send((index, kind, value, detail))


def _describe(out: object) -> str:
    if isinstance(out, (list, tuple)):
        return f"{len(out)} values"
    return f"a {type(out).__name__}"


if __name__ == "__main__":
    _worker_main(_Duplex(Connection(int(sys.argv[1])), Connection(int(sys.argv[2]))), sys.argv[3],
                 int(sys.argv[4]) if len(sys.argv) > 4 else None)
