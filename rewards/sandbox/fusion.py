"""The `sandbox_fusion` backend: the same harness, run by a SandboxFusion server (`POST {url}/run_code`).

SandboxFusion isolates each run on its side (its own containers and limits); what it runs here is
harness.py itself, with the job on stdin, so the test semantics are the local backend's: the
program and the judge are separate processes (a random uid of its own where the runner is root,
else the same uid with the judge not dumpable), and the verdict line is the harness's, read from
the run's stdout. A request that fails, times out or returns no verdict is that program's error
(scored None), never a pass or a fail.
"""

from __future__ import annotations

import json
import urllib.request

from .base import HARNESS, Backend, Job, Limits, ProgramResult, SandboxUnavailable, job_payload, result_of


STARTUP_S = 10.0
PER_TEST_MARGIN_S = 1.5
HTTP_MARGIN_S = 30.0  # the request's own time past the run's (queueing on the server)
MEMORY_MARGIN_MB = 512  # the harness and its judges, beyond the program's own limit


class FusionSandbox(Backend):
    def __init__(self, limits: Limits, url: str | None, workers: int | None = None):
        if not url:
            raise SandboxUnavailable("backend sandbox_fusion needs `url` (the server's base URL)")
        super().__init__(limits)
        self.url = url.rstrip("/")
        self.workers = workers or 8  # requests in flight: the server does the work
        self._source = HARNESS.read_text(encoding="utf-8")

    def _run_one(self, job: Job) -> ProgramResult:
        run_s = STARTUP_S + len(job.suite.tests) * (self.limits.test_timeout_s + PER_TEST_MARGIN_S)
        request = {"code": self._source, "language": "python", "stdin": json.dumps(job_payload(job, self.limits)),
                   "compile_timeout": 10, "run_timeout": run_s,
                   "memory_limit_MB": self.limits.memory_mb + MEMORY_MARGIN_MB, "files": {}, "fetch_files": []}
        try:
            answer = _post(f"{self.url}/run_code", request, timeout=run_s + HTTP_MARGIN_S)
        except (OSError, ValueError) as exc:  # refused, timed out, not JSON: no verdict
            return ProgramResult(error=f"SandboxFusion at {self.url}: {type(exc).__name__}: {str(exc)[:200]}")
        run = answer.get("run_result") if isinstance(answer, dict) else None
        if not isinstance(run, dict):
            return ProgramResult(error=f"SandboxFusion answered {answer.get('status') if isinstance(answer, dict) else answer!r}"
                                       f": {str(answer.get('message', '') if isinstance(answer, dict) else '')[:200]}")
        return result_of(str(run.get("stdout") or ""), str(run.get("stderr") or ""), run.get("return_code"))


def _post(url: str, body: dict, timeout: float) -> dict:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured server
        return json.loads(response.read())
