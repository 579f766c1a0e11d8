"""The local backends: each program in its own run of harness.py, several programs at once.

`local`: `setpriv --pdeathsig KILL unshare --pid --fork --kill-child --mount-proc --net --mount
--ipc --uts python -I harness.py`. The runner is PID 1 of a fresh PID namespace (when it ends,
the kernel kills everything left in it), without network (a fresh network namespace has only a
loopback that is down), with every mount read-only and a tmpfs on the work folder. The program
runs as a random uid of its own (RLIMIT_NPROC binds it: a fork bomb stops at `processes`), with
an empty environment. If this process dies, the pdeathsig chain takes the sandbox with it; past
its time, the whole process group is killed.

`local_no_namespaces` (only when a config names it): the same runner, limits, uid, environment
and verdicts, without the namespaces: the program sees the network and can write wherever its
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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .base import Job, Limits, ProgramResult, SandboxUnavailable, TestResult


HARNESS = Path(__file__).with_name("harness.py")
NAMESPACES = ["--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount", "--ipc", "--uts"]
STARTUP_S = 10.0  # the runner's own start (an interpreter, the namespaces), beyond the tests' time
PER_TEST_MARGIN_S = 1.5  # the judge, the kill and the clean-up of one test
UIDS = (1 << 20, 1 << 30)  # a random uid of these per run: none is a real user's, none is shared


class LocalSandbox:
    def __init__(self, limits: Limits, namespaces: bool = True, workers: int | None = None):
        self.limits = limits
        self.namespaces = namespaces
        self.workers = workers or max(1, len(os.sched_getaffinity(0)))
        self._random = random.SystemRandom()
        self._unavailable: str | None = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        """Why this backend cannot run here (None: it can), found by running one program."""
        with self._lock:
            if self._unavailable is None:
                self._unavailable = self._probe()
            return self._unavailable or None

    def _probe(self) -> str:
        missing = [tool for tool in self._tools() if not shutil.which(tool)]
        if missing:
            return f"{', '.join(missing)} not found on PATH (util-linux)"
        from .suites import Suite

        program = "import fractions, statistics\ndef f():\n    return 1\n"  # the standard library, from disk
        result = self._run_one(Job(program, Suite("asserts", ("assert f() == 1",))))
        if result.error:
            return result.error
        if not result.tests[0].passed:
            return f"a trivial program failed in the sandbox: {result.tests[0].detail}"
        return ""

    def _tools(self) -> list[str]:
        return ["setpriv", "unshare"] if self.namespaces else ["setpriv"]

    def run(self, jobs: list[Job]) -> list[ProgramResult]:
        problem = self.problem()
        if problem:
            raise SandboxUnavailable(problem)
        if len(jobs) == 1 or self.workers == 1:
            return [self._run_one(job) for job in jobs]
        with ThreadPoolExecutor(min(self.workers, len(jobs)), thread_name_prefix="grpo-sandbox") as pool:
            return list(pool.map(self._run_one, jobs))

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
        payload = {**job.suite.job(job.program), "limits": self.limits.as_dict(), "workdir": workdir, "uid": uid,
                   "namespaces": self.namespaces, "site_packages": site_packages()}
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
        return _result(out, err, proc.returncode)


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


def _result(out: bytes, err: bytes, returncode: int | None) -> ProgramResult:
    try:
        data = json.loads(out) if out else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {returncode}"]
        return ProgramResult(error=f"the sandbox failed: {why[0][:300]}")
    if "error" in data:
        return ProgramResult(error=str(data["error"])[:300])
    return ProgramResult(tuple(TestResult(bool(r.get("passed")), str(r.get("detail", "")), float(r.get("seconds", 0)))
                               for r in data.get("results", [])))
