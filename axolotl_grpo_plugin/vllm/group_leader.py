"""Process-group leader for the vLLM server: `python group_leader.py COMMAND...`.

It leads the server's process group and runs COMMAND as its child. On SIGTERM,
whether from the trainer's teardown or from the kernel because the trainer died
(even by SIGKILL, e.g. the OOM killer; see PR_SET_PDEATHSIG in server.py), it
forwards SIGTERM to the whole group, waits `AXOLOTL_GRPO_PLUGIN_STOP_GRACE`
seconds, then SIGKILLs the group, so vLLM's worker processes cannot outlive the
run and keep the GPU. Run by file path with only the standard library, so it
works in any interpreter the trainer uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


GRACE_ENV = "AXOLOTL_GRPO_PLUGIN_STOP_GRACE"


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: group_leader.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    grace = float(os.environ.get(GRACE_ENV) or 10)
    stop_at: list[float] = []

    def stop_group(signum, frame):
        # Only note the time and forward: the main loop below does the waiting (a
        # handler that waits would race the main thread's own wait on the child).
        if not stop_at:
            stop_at.append(time.monotonic() + grace)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # our own killpg must not re-enter
            os.killpg(0, signal.SIGTERM)

    # Handlers first, so a stop that comes during start-up is not lost (exec resets
    # them to the default in the child).
    signal.signal(signal.SIGTERM, stop_group)
    signal.signal(signal.SIGHUP, stop_group)
    child = subprocess.Popen(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner decides when to stop
    while (code := child.poll()) is None:
        if stop_at and time.monotonic() > stop_at[0]:
            os.killpg(0, signal.SIGKILL)  # takes this leader down too
        time.sleep(0.05)
    if stop_at:
        os.killpg(0, signal.SIGKILL)  # the server is gone; no worker may outlive it
    # The server ended by itself: ask what it left behind to go too.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
