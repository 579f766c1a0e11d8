"""Torch threads of `axolotl train` on CPU: what a user gets with nothing set against every core.

On a machine without a GPU, `axolotl train` runs `accelerate launch` without `--cpu`, and
accelerate then sets OMP_NUM_THREADS=1 for the training process unless the user set it
(accelerate/commands/launch.py); the GRPO plugin then sets torch's threads to the cores the
process may use (axolotl_grpo_plugin/training/threads.py), a config without the plugin computes on one
core. This runs the same config for --steps steps with OMP_NUM_THREADS unset and set to the core
count, alternating, --repeats times, and prints the median step time of each
(bench/step_stamps.py, from step 3 on) with their ratio; for a GRPO config also the mean
`time/optimizer` and `time/generation` (the plugin's step-time breakdown) and the plugin's
`torch threads:` line. `--set KEY=VALUE` (dotted keys, YAML values) changes the config.

    . .venv-vllm/bin/activate
    python bench/bench_threads.py --config configs/smollm2-gsm8k-sft.yaml \\
        --base-model models/smollm2-135m --train-data PATH/gsm8k/train.jsonl --steps 8
    python bench/bench_threads.py --config configs/smollm2-gsm8k-grpo-cpu.yaml \\
        --base-model models/smollm2-135m --train-data axolotl_grpo_plugin/data/gsm8k_sample.jsonl \\
        --steps 6 --set trl.use_vllm=false --set grpo_plugin.vllm_autostart=false
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def run(tmp: Path, name: str, threads: int | None, args: argparse.Namespace) -> dict:
    import yaml
    from bench_real_model import local_dataset

    from axolotl_grpo_plugin.rollouts.log import log_files, read_rollouts
    from axolotl_grpo_plugin.system.childenv import offline_child_env

    cfg = yaml.safe_load(args.config.read_text())
    out = tmp / name
    cfg.update(base_model=str(args.base_model.resolve()), max_steps=args.steps, output_dir=str(out),
               dataset_prepared_path=str(tmp / "prepared"), save_strategy="no")
    if args.train_data:
        cfg["datasets"] = [local_dataset(cfg["datasets"][0], args.train_data)]
    for change in args.set:
        key, value = change.split("=", 1)
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    cfg["plugins"] = [*(cfg.get("plugins") or []), "step_stamps.StepStamps"]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = offline_child_env(ROOT)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), env.get("PYTHONPATH", "")])
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    log = tmp / f"{name}.log"
    with open(log, "w") as f:
        rc = subprocess.run([shutil.which("axolotl", path=env["PATH"]), "train", str(path)], cwd=tmp,
                            env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    stamps_file = out / "step_stamps.txt"
    if rc != 0 or not stamps_file.exists():
        raise SystemExit(f"{name}: axolotl train failed (exit {rc}):\n" + log.read_text()[-3000:])
    stamps = [float(x) for x in stamps_file.read_text().split()]
    result = {"step": statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))}
    said = [line.split("torch threads:", 1)[1].strip() for line in log.read_text().splitlines()
            if "torch threads:" in line]
    if log_files(out):
        parts = [r["seconds"] for r in read_rollouts(out, everything=True)
                 if r.get("type") == "step_time" and r["step"] >= 3]
        result.update({p: statistics.mean(s.get(p, 0.0) for s in parts) for p in ("optimizer", "generation")})
    return result, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--base-model", type=Path, required=True)
    parser.add_argument("--train-data", type=Path, help="a local jsonl for its first dataset (offline)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config change, e.g. trl.use_vllm=false (repeatable)")
    args = parser.parse_args()
    from axolotl_grpo_plugin.system.launch import available_cores

    cores = available_cores()
    arms = {"nothing set": None, f"OMP_NUM_THREADS={cores}": cores}
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for arm in (list(arms) if i % 2 == 0 else list(arms)[::-1]):
                started = time.monotonic()
                result, said = run(Path(tmp), f"r{i}-{arms[arm] or 'default'}", arms[arm], args)
                results[arm].append(result)
                print(f"repeat {i} {arm}: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.items())
                      + f" ({time.monotonic() - started:.0f} s)" + "".join(f"; torch threads: {s}" for s in said),
                      flush=True)
    for part in ("step", "optimizer"):
        if all(part in r for runs in results.values() for r in runs):
            default, every = (statistics.median(r[part] for r in runs) for runs in results.values())
            print(f"median {part}: nothing set {default:.2f} s, OMP_NUM_THREADS={cores} {every:.2f} s: "
                  f"{default / every:.2f}x")


if __name__ == "__main__":
    main()
