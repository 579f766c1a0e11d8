"""Torch threads of `axolotl train` on CPU: what a user gets against every core.

On a machine without a GPU, `axolotl train` runs `accelerate launch` without `--cpu`, and
accelerate then sets OMP_NUM_THREADS=1 for the training process unless the user set it
(accelerate/commands/launch.py): the trainer computes on one core. This runs the same config
for --steps steps with OMP_NUM_THREADS left to accelerate and set to the core count,
alternating, --repeats times, and prints the median step time of each (bench/step_stamps.py,
from step 3 on) with their ratio; for a GRPO config also the mean `time/optimizer` and
`time/generation` (the plugin's step-time breakdown).

    . .venv-vllm/bin/activate
    python bench/bench_threads.py --config configs/smollm2-gsm8k-sft.yaml \\
        --base-model models/smollm2-135m --train-data PATH/gsm8k/train.jsonl --steps 8
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

    from axolotl_grpo_plugin.childenv import offline_child_env
    from axolotl_grpo_plugin.observe.rollout_log import log_files, read_rollouts

    cfg = yaml.safe_load(args.config.read_text())
    out = tmp / name
    cfg.update(base_model=str(args.base_model.resolve()), max_steps=args.steps, output_dir=str(out),
               dataset_prepared_path=str(tmp / "prepared"), save_strategy="no")
    if args.train_data:
        cfg["datasets"] = [local_dataset(cfg["datasets"][0], args.train_data)]
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
    if log_files(out):
        parts = [r["seconds"] for r in read_rollouts(out, everything=True)
                 if r.get("type") == "step_time" and r["step"] >= 3]
        result.update({p: statistics.mean(s.get(p, 0.0) for s in parts) for p in ("optimizer", "generation")})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--base-model", type=Path, required=True)
    parser.add_argument("--train-data", type=Path, help="a local jsonl for its first dataset (offline)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from axolotl_grpo_plugin.launch import available_cores

    cores = available_cores()
    arms = {"accelerate's default": None, f"OMP_NUM_THREADS={cores}": cores}
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for arm in (list(arms) if i % 2 == 0 else list(arms)[::-1]):
                started = time.monotonic()
                result = run(Path(tmp), f"r{i}-{arms[arm] or 'default'}", arms[arm], args)
                results[arm].append(result)
                print(f"repeat {i} {arm}: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.items())
                      + f" ({time.monotonic() - started:.0f} s)", flush=True)
    default, every = (statistics.median(r["step"] for r in runs) for runs in results.values())
    print(f"median step: accelerate's default {default:.2f} s, {cores} threads {every:.2f} s: "
          f"{default / every:.2f}x")


if __name__ == "__main__":
    main()
