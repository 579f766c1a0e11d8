"""Child processes that cannot outlive the training process that started them (the vLLM
server, reward workers), even when it dies by SIGKILL (e.g. the OOM killer)."""

from __future__ import annotations

import os
import signal
import sys


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
