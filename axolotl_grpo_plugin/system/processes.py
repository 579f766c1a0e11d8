"""Child processes that cannot outlive the training process that started them (the vLLM
server, reward workers), even when it dies by SIGKILL (e.g. the OOM killer).

Linux's PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
process: a reward worker started from a short-lived thread (a data-loader or a thread
pool worker) was killed with it. `popen_owned_by_process` forks from one long-lived
thread of this process instead, so the signal comes only when the process ends.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading


PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """Linux: have the kernel send `signum` to this process when its parent dies. Call it in
    the child (as a Popen `preexec_fn`, or first thing in the child's main). With
    `parent_pid`, exit at once if the parent already died before the request took effect."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):  # elsewhere the child still ends when its pipes close
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


class _Spawner:
    """One daemon thread per process that runs every `subprocess.Popen` handed to it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue | None = None
        self._pid: int | None = None

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._queue is None or self._pid != os.getpid():  # first use, or a forked child
                self._queue, self._pid = queue.SimpleQueue(), os.getpid()
                threading.Thread(target=self._serve, args=(self._queue,), name="grpo-plugin-spawner",
                                 daemon=True).start()
            requests = self._queue
        done, box = threading.Event(), {}
        requests.put((args, kwargs, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["proc"]

    @staticmethod
    def _serve(requests: queue.SimpleQueue) -> None:
        while True:
            args, kwargs, box, done = requests.get()
            try:
                box["proc"] = subprocess.Popen(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                box["error"] = exc
            finally:
                done.set()


_SPAWNER = _Spawner()


def popen_owned_by_process(*args, **kwargs) -> subprocess.Popen:
    """`subprocess.Popen(*args, **kwargs)`, forked from a thread that lives as long as this
    process, so a child that calls `die_with_parent` dies with the process, not with the
    (maybe short-lived) thread that asked for it."""
    return _SPAWNER.popen(*args, **kwargs)
