#!/usr/bin/env python
"""A stand-in for `axolotl vllm-serve` in tests: serves `/health/` and `/health` on loopback
(Axolotl 0.19's TRL-style server and 0.21's native vLLM server), and both generate routes.

    fake_vllm_server.py --config vllm-server.yaml --mode ok|crash|never-healthy|no-vllm|dead-engine
                        [--delay S] [--ignore-term] [--child] [--info FILE]

`/generate/` (and `/v1/completions`) answers one token per prompt in mode ok; in mode dead-engine `/health/`
answers 200 but `/generate/` never returns, as a server whose engine worker died.
It reads `vllm.host`/`vllm.port` from the config it is given, as the real server does,
writes its pid (and its child's) plus the environment it saw to `--info`, and prints
to stdout and stderr so log capture can be checked.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--mode", default="ok", choices=["ok", "crash", "never-healthy", "no-vllm", "dead-engine"])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--generate-delay", type=float, default=0.0, help="seconds each generation takes")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--child", action="store_true", help="spawn a worker, as vLLM does")
    parser.add_argument("--info")
    args = parser.parse_args()
    host, port = args.host, args.port
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            vllm = (yaml.safe_load(handle) or {}).get("vllm") or {}
        host, port = vllm.get("host", host), int(vllm.get("port", port))
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = None
    if args.child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if args.info:
        info = {"pid": os.getpid(), "child": child.pid if child else None,
                "env": {k: os.environ.get(k) for k in
                        ("CUDA_VISIBLE_DEVICES", "AXOLOTL_GRPO_PLUGIN_VLLM_SERVER", "RANK", "WORLD_SIZE",
                         "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU")}}
        with open(args.info + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        os.replace(args.info + ".tmp", args.info)
    print(f"fake vLLM: loading model (mode={args.mode}, delay={args.delay})", flush=True)
    print("fake vLLM: a line on stderr", file=sys.stderr, flush=True)
    time.sleep(args.delay)
    if args.mode == "crash":
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB", file=sys.stderr, flush=True)
        return 3
    if args.mode == "no-vllm":
        print("ModuleNotFoundError: No module named 'vllm'", file=sys.stderr, flush=True)
        return 1
    status = 503 if args.mode == "never-healthy" else 200

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            code = status if self.path.rstrip("/") == "/health" else 404
            self.send_response(code)
            self.end_headers()

        def do_POST(self):  # noqa: N802
            if self.path.rstrip("/") not in ("/generate", "/v1/completions"):
                self.send_response(404)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if args.mode == "dead-engine":
                print("fake vLLM: EngineCore worker died: RuntimeError: head size 16 is not supported",
                      file=sys.stderr, flush=True)
                time.sleep(3600)  # the request is never answered
            time.sleep(args.generate_delay)
            n, prompts = int(body.get("n", 1)), body.get("prompts") or []
            if self.path.startswith("/v1/"):  # vLLM's OpenAI route: one choice per prompt x n
                prompts = body.get("prompt") or []
                prompts = [prompts] if isinstance(prompts, str) else prompts
                answer = json.dumps({"choices": [{"index": i, "text": "x", "prompt_token_ids": [1],
                                                  "token_ids": [2]} for i in range(n * len(prompts))]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            answer = json.dumps({"prompt_ids": [[1] for _ in prompts], "completion_ids": [[2]] * (n * len(prompts)),
                                 "logprobs": [[[-0.5]]] * (n * len(prompts)),
                                 "logprob_token_ids": [[[2]]] * (n * len(prompts))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((host, port), Health)
    print(f"fake vLLM: serving on http://{host}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
