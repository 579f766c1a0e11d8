"""The `modal` backend: the same harness in a Modal Sandbox, one per program, without network.

`modal.Sandbox.create("python", "-c", HARNESS, image=debian_slim, block_network=True, timeout=...)`,
the job written to its stdin, the verdict line read from its stdout: the test semantics are the
local backend's (harness.py judges outside the program, under a uid of its own where the sandbox
runs as root). Modal's own container is the isolation around it. Needs the `modal` SDK and its
credentials (`modal token new`); the app is looked up (created once) by name. A sandbox that
cannot be created, or returns no verdict, is that program's error (None), never a pass or a fail.
"""

from __future__ import annotations

import json

from .base import HARNESS, Backend, Job, Limits, ProgramResult, job_payload, result_of


APP_NAME = "axolotl-grpo-code-sandbox"
PYTHON_VERSION = "3.11"
STARTUP_S = 60.0  # a container start, beyond the tests' time
PER_TEST_MARGIN_S = 1.5
MEMORY_MARGIN_MB = 512


class ModalSandbox(Backend):
    def __init__(self, limits: Limits, workers: int | None = None, app_name: str = APP_NAME):
        super().__init__(limits)
        self.app_name = app_name
        self.workers = workers or 16  # sandboxes at once: the work runs on Modal
        self._source = HARNESS.read_text(encoding="utf-8")
        self._app = None

    def _precheck(self) -> str:
        try:
            import modal  # noqa: F401
        except ImportError:
            return "the modal SDK is not installed (pip install modal)"
        return ""

    def _run_one(self, job: Job) -> ProgramResult:
        run_s = STARTUP_S + len(job.suite.tests) * (self.limits.test_timeout_s + PER_TEST_MARGIN_S)
        sandbox = None
        try:
            import modal

            if self._app is None:
                self._app = modal.App.lookup(self.app_name, create_if_missing=True)
            sandbox = modal.Sandbox.create(
                "python", "-c", self._source, app=self._app,
                image=modal.Image.debian_slim(python_version=PYTHON_VERSION), timeout=int(run_s) + 1,
                block_network=True, cpu=1.0, memory=self.limits.memory_mb + MEMORY_MARGIN_MB)
            sandbox.stdin.write(json.dumps(job_payload(job, self.limits)))
            sandbox.stdin.write_eof()
            sandbox.stdin.drain()
            sandbox.wait()
            return result_of(str(sandbox.stdout.read()), str(sandbox.stderr.read()), sandbox.returncode)
        except Exception as exc:  # noqa: BLE001 - no credentials, no network, a failed container: no verdict
            return ProgramResult(error=f"Modal sandbox: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            if sandbox is not None:
                try:
                    sandbox.terminate()
                except Exception:  # noqa: BLE001 - it may be gone already
                    pass
