"""The sandbox: the one place model-written code runs (docs/code.md).

`run_programs(jobs)` runs each program against its tests and returns one `ProgramResult` per job:
a verdict per test, or an error when the sandbox itself could not run it (never a silent weaker
run). Backends, behind the same interface and the same test semantics (suites.py):

- `local`: namespaces on this machine (harness.py, local.py), the default;
- `local_no_namespaces`: the same limits without the namespaces, only when named in the config;
- `sandbox_fusion`: a SandboxFusion server's HTTP API (fusion.py);
- `modal`: Modal Sandboxes (modal_backend.py).

The plugin hands the config's `grpo_plugin.code_sandbox` settings to `configure`; without it
(the rewards used on their own) the `local` backend runs with `Limits()`.
"""

from __future__ import annotations

import threading

from .base import BACKENDS, Job, Limits, ProgramResult, SandboxUnavailable, Settings, TestResult


__all__ = ["BACKENDS", "Job", "Limits", "ProgramResult", "SandboxUnavailable", "Settings", "TestResult",
           "configure", "current_sandbox", "make_sandbox", "run_programs"]


_lock = threading.Lock()
_current: dict = {}


def make_sandbox(settings: Settings):
    """The backend object for `settings` (each has `run(jobs) -> list[ProgramResult]`)."""
    if settings.backend in ("local", "local_no_namespaces"):
        from .local import LocalSandbox

        return LocalSandbox(settings.limits, namespaces=settings.backend == "local", workers=settings.workers)
    if settings.backend == "sandbox_fusion":
        from .fusion import FusionSandbox

        return FusionSandbox(settings.limits, url=settings.url, workers=settings.workers)
    if settings.backend == "modal":
        from .modal_backend import ModalSandbox

        return ModalSandbox(settings.limits, workers=settings.workers)
    raise ValueError(f"unknown sandbox backend {settings.backend!r}; one of {', '.join(BACKENDS)}")


def configure(settings: Settings) -> None:
    """Use `settings` for every later `run_programs` in this process (the plugin calls it once)."""
    with _lock:
        _current["sandbox"] = make_sandbox(settings)


def current_sandbox():
    with _lock:
        if "sandbox" not in _current:
            _current["sandbox"] = make_sandbox(Settings())
        return _current["sandbox"]


def run_programs(jobs: list[Job]) -> list[ProgramResult]:
    """Each job's verdicts on the configured sandbox; never raises (a failure is each job's error)."""
    if not jobs:
        return []
    try:
        return current_sandbox().run(jobs)
    except Exception as exc:  # noqa: BLE001 - a broken backend scores nothing, it does not stop training
        return [ProgramResult(error=f"{type(exc).__name__}: {exc}") for _ in jobs]
