"""Process-group leader for the vLLM server: `python group_leader.py COMMAND...`.

It leads the server's process group and runs COMMAND as its child. On SIGTERM,
whether from the trainer's teardown or from the kernel because the trainer died
(even by SIGKILL, e.g. the OOM killer; see PR_SET_PDEATHSIG in server.py), it
forwards SIGTERM to the whole group, waits `AXOLOTL_GRPO_PLUGIN_STOP_GRACE`
seconds, then SIGKILLs the group, so vLLM's worker processes cannot outlive the
run and keep the GPU. Run by file path with only the standard library, so it
works in any interpreter the trainer uses.

It also keeps the server's clean-up inside its own session: Axolotl's `vllm-serve`
ends by SIGKILLing every process `pgrep -f VLLM::EngineCore` finds on the machine
(axolotl/scripts/process_cleanup.py), which would take down the engine of any other
run's server. The server finds a `pgrep` first on its PATH that only matches
processes of this session (`pgrep -s 0`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time


GRACE_ENV = "AXOLOTL_GRPO_PLUGIN_STOP_GRACE"
PGREP_SHIM = """#!/bin/sh
# axolotl-grpo-plugin: this vLLM server's clean-up may only see its own session's processes
exec {real} -s 0 "$@"
"""


def session_only_pgrep(folder: str) -> dict[str, str]:
    """The child's environment with a `pgrep` in `folder` first on PATH that matches only this
    session's processes; unchanged where the machine has no pgrep."""
    env = dict(os.environ)
    real = shutil.which("pgrep")
    if real is None:
        return env
    shim = os.path.join(folder, "pgrep")
    with open(shim, "w") as out:
        out.write(PGREP_SHIM.format(real=shlex.quote(real)))
    os.chmod(shim, 0o755)
    env["PATH"] = folder + os.pathsep + env.get("PATH", "")
    return env


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
    shims = tempfile.mkdtemp(prefix="axolotl-grpo-session-")

    def kill_group() -> None:  # takes this leader down too: the shim folder goes first
        shutil.rmtree(shims, ignore_errors=True)
        os.killpg(0, signal.SIGKILL)

    try:
        child = subprocess.Popen(argv, env=session_only_pgrep(shims))
        return wait_for(child, stop_at, kill_group)
    finally:
        shutil.rmtree(shims, ignore_errors=True)


def wait_for(child: subprocess.Popen, stop_at: list[float], kill_group) -> int:
    """Wait for the server; after a stop request, kill the group once the grace is over."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner decides when to stop
    while (code := child.poll()) is None:
        if stop_at and time.monotonic() > stop_at[0]:
            kill_group()
        time.sleep(0.05)
    if stop_at:
        kill_group()  # the server is gone; no worker may outlive it
    # The server ended by itself: ask what it left behind to go too.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
