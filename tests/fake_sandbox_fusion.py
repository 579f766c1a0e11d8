"""A stand-in SandboxFusion server for the tests: `POST /run_code` runs the code with Python, as the
real server's python runner does (without its containers), and answers in its response shape."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# The real server runs its own interpreter; the system's is readable by any uid (pyenv's under /root is not).
PYTHON = shutil.which("python3", path="/usr/bin") or sys.executable


class Handler(BaseHTTPRequestHandler):
    answer_override: dict | None = None  # set by a test to answer something else
    requests: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.path != "/run_code":
            return self._send(404, {"detail": "Not Found"})
        if type(self).answer_override is not None:
            return self._send(200, type(self).answer_override)
        try:
            proc = subprocess.run([PYTHON, "-c", body["code"]], input=body.get("stdin", "").encode(),
                                  capture_output=True, timeout=body.get("run_timeout", 10), env={}, cwd="/tmp")
            run = {"status": "Finished", "return_code": proc.returncode, "stdout": proc.stdout.decode(),
                   "stderr": proc.stderr.decode()[-2000:], "execution_time": 0.0}
            status = "Success" if proc.returncode == 0 else "Failed"
        except subprocess.TimeoutExpired:
            run, status = {"status": "TimeLimitExceeded", "return_code": None, "stdout": "", "stderr": ""}, "Failed"
        self._send(200, {"status": status, "message": "", "compile_result": None, "run_result": run, "files": {}})

    def _send(self, code: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve() -> tuple[ThreadingHTTPServer, str]:
    """A running server on a free loopback port, and its base URL; `server.shutdown()` stops it."""
    Handler.answer_override, Handler.requests = None, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"

