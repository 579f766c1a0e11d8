"""How long `axolotl vllm-serve` on vLLM's CPU build takes to answer /health/, with the engine in
the server's worker process (VLLM_ENABLE_V1_MULTIPROCESSING=0) against vLLM's default (the engine
in a process of its own), on Axolotl 0.19's server. The plugin's autostart keeps the default: with
the variable set, two end-to-end tests failed (docs/benchmarks.md, "vLLM-CPU server start").

    . .venv-vllm/bin/activate
    axolotl-grpo embedded build --variant hd32
    python bench/bench_vllm_cpu_server_start.py --repeats 2

The two settings alternate (A B A B ...) on configs/cpu-vllm-server.yaml's server (the tiny hd32
model); each start is timed from the command to the first /health/ 200 (the plugin's `VLLMServer`, as the
autostart starts it), then one-token generation proves the engine answers (`engine_check`), and the
server is stopped before the next. Prints
one line per start and the median of each setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from axolotl_grpo_plugin.vllm import engine_check
from axolotl_grpo_plugin.vllm.server import ServerSpec, VLLMServer


REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"in-process engine (=0)": "0", "own engine process (vLLM default)": "1"}


def start_once(config: Path, port: int, in_process: str, log: Path) -> float:
    """One start through the plugin's own server class (the autostart's start, health wait and stop)."""
    env = {**os.environ, "AXOLOTL_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": in_process}
    server = VLLMServer(ServerSpec(command=[sys.executable, "-m", "axolotl.cli.main", "vllm-serve", str(config)],
                                   log_path=log, host="127.0.0.1", port=port, env=env))
    server.start()
    try:
        took = server.wait_healthy(600, report=lambda _: None, poll=0.2)  # seconds from the start
        engine_check.check_engine(server.spec.url, log)  # one token: the engine answers, not just /health/
        return took
    finally:
        server.stop(grace=20)
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
