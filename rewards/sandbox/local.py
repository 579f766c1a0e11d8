"""The local backends: each program in its own run of harness.py, several programs at once.

`local`: `setpriv --pdeathsig KILL unshare --pid --fork --kill-child --mount-proc --net --mount
--ipc --uts python -I harness.py`. The runner is PID 1 of a fresh PID namespace (when it ends,
the kernel kills everything left in it), without network (a fresh network namespace has only a
loopback that is down), with every mount read-only and a tmpfs on the work folder. The program
runs as a random uid of its own (RLIMIT_NPROC binds it: a fork bomb stops at `processes`), with
an empty environment and a seccomp filter (harness.DENIED_SYSCALLS). If this process dies, the
pdeathsig chain takes the sandbox with it; past its time, the whole process group is killed.

`local_no_namespaces` (only when a config names it): the same runner, limits, uid, environment,
filter and verdicts, without the namespaces: the program sees the network and can write wherever its
uid may (world-writable folders such as /tmp); as root its processes are killed by uid, otherwise
only those that stay its descendants are (orphans come back to the runner, a subreaper).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import harness
from .base import HARNESS, Backend, Job, Limits, ProgramResult, SandboxUnavailable, job_payload, result_of


NAMESPACES = ["--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount", "--ipc", "--uts"]
STARTUP_S = 10.0  # the runner's own start (an interpreter, the namespaces), beyond the tests' time
PER_TEST_MARGIN_S = 1.5  # the judge, the kill and the clean-up of one test
UIDS = (1 << 20, 1 << 30)  # a random uid of these per run: none is a real user's, none is shared


class LocalSandbox(Backend):
    def __init__(self, limits: Limits, namespaces: bool = True, workers: int | None = None):
        super().__init__(limits)
        self.namespaces = namespaces
        self.workers = workers or max(1, len(os.sched_getaffinity(0)))
        self._random = random.SystemRandom()

    def _precheck(self) -> str:
        tools = ["setpriv", "unshare"] if self.namespaces else ["setpriv"]
        missing = [tool for tool in tools if not shutil.which(tool)]
        if missing:
            return f"{', '.join(missing)} not found on PATH (util-linux)"
        if why := harness.seccomp_missing():  # both local backends filter the program's system calls
            return f"the sandbox cannot build its system-call filter: {why}"
        return ""

    def missing_library(self) -> str | None:
        return harness.SECCOMP_LIBRARY if harness.seccomp_missing() else None

    def run(self, jobs: list[Job]) -> list[ProgramResult]:
        problem = self.problem()  # a machine that refuses the namespaces runs nothing, never something weaker
        if problem:
            raise SandboxUnavailable(problem)
        return super().run(jobs)

    def _command(self) -> list[str]:
        python = [sys.executable, "-I", "-S", "-B", str(HARNESS)]  # -S: no .pth files to run; site_packages() below
        wrapper = [shutil.which("setpriv") or "setpriv", "--pdeathsig", "KILL"]
        if not self.namespaces:
            return wrapper + python
        return wrapper + [shutil.which("unshare") or "unshare", *NAMESPACES, "--"] + python

    def _run_one(self, job: Job) -> ProgramResult:
        root = os.geteuid() == 0
        uid = self._random.randrange(*UIDS) if root else None
        workdir = tempfile.mkdtemp(prefix="grpo-sandbox-")
        os.chmod(workdir, 0o755)
        payload = job_payload(job, self.limits, workdir=workdir, uid=uid, namespaces=self.namespaces, seccomp=True,
                              site_packages=site_packages())
        budget = STARTUP_S + len(job.suite.tests) * (self.limits.test_timeout_s + PER_TEST_MARGIN_S)
        try:
            proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env={}, cwd=workdir, start_new_session=True)
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            return ProgramResult(error=f"the sandbox did not start: {exc}")
        try:
            out, err = proc.communicate(json.dumps(payload).encode(), timeout=budget)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = b"", b"the sandbox ran past its time and was killed"
        finally:
            _kill_group(proc)
            if uid is not None and not self.namespaces:
                kill_uid(uid)  # orphans that left the runner's tree with it
            shutil.rmtree(workdir, ignore_errors=True)
        return result_of(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), proc.returncode)


def site_packages() -> list[str]:
    """This interpreter's site-packages (numpy and the like, for programs that import them),
    without the .pth files `site` would run at each start (an editable install's finder: 30 ms)."""
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def kill_uid(uid: int) -> None:
    """Every process of `uid`, killed from outside the runner (it may be gone)."""
    kill = shutil.which("kill") or "/bin/kill"
    for _ in range(3):
        subprocess.run([shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        "--", kill, "-KILL", "-1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={},
                       check=False)
        time.sleep(0.01)
