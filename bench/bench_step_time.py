"""Cost of the step-time breakdown (`grpo_plugin.step_time`, observe/step_time.py), two ways.

    python bench/bench_step_time.py [--pairs 6] [--steps 150]

1. End to end: `axolotl train` on configs/smoke.yaml (CPU, the embedded tiny model), alternating
   runs with `step_time: true` and `false` (on-off, off-on, ...: a drift in load hits both alike),
   `--steps` steps each. A run's step is the median wall time between consecutive step ends,
   stamped by the same bench plugin in both arms (bench/step_stamps.py; step 1, with its warm-up,
   left out; one torch thread). Prints each pair's ratio on/off, and their median and mean. Runs
   on a shared box vary by a few %, more than the cost, so this bounds it.
2. Direct: the instrumentation itself per step, timed in-process: every wrapped call of a step
   (observe/step_time.py TARGETS, the optimizer step and the rollout-log bookkeeping) through a
   StepClock, then the step's close (`on_step_end`: six metric appends and a deferred record),
   divided by the mean step of the `on` runs.
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
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from axolotl_grpo_plugin.observe.step_time import TARGETS, make_callback  # noqa: E402
from axolotl_grpo_plugin.rollouts.step_clock import StepClock  # noqa: E402


def run(tmp: Path, name: str, steps: int, on: bool) -> float:
    """Median seconds per step (step 2 on) of one `axolotl train` of the smoke config."""
    import yaml

    from axolotl_grpo_plugin.embedded import build
    from axolotl_grpo_plugin.system.childenv import offline_child_env

    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg.update(base_model=str(build(out=ROOT / ".cache" / "embedded").model_dir), max_steps=steps,
               output_dir=str(tmp / name), dataset_prepared_path=str(tmp / "prepared"))
    cfg["datasets"][0]["path"] = str(ROOT / cfg["datasets"][0]["path"])
    cfg["grpo_plugin"] = {"step_time": on}
    cfg["plugins"] = [*cfg["plugins"], "step_stamps.StepStamps"]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = offline_child_env(ROOT)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # one torch thread: a busy shared box slows both arms alike
    proc = subprocess.run([shutil.which("axolotl", path=env["PATH"]), "train", str(path)], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=900)
    stamps_file = tmp / name / "step_stamps.txt"
    if proc.returncode != 0 or not stamps_file.exists():
        raise SystemExit(f"{name}: axolotl train failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    stamps = [float(x) for x in stamps_file.read_text().split()]
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


class _Writer:
    def __init__(self):
        self.deferred = []

    def defer(self, record):
        self.deferred.append(record)


def direct_cost(rounds: int = 20000) -> float:
    """Seconds the instrumentation adds to one step (all of a step's timed calls and its close)."""
    clock = StepClock()
    trainer = SimpleNamespace(_metrics={"train": defaultdict(list)})
    writer = _Writer()
    callback = make_callback(clock, trainer, writer)
    raw = [lambda: None for _ in (*TARGETS, "other")]
    calls = [clock.timed(part, fn) for (_, part), fn in zip([*TARGETS, (None, "other")], raw)]
    state = SimpleNamespace(global_step=1)

    def bare():  # the wrapped functions themselves, to subtract
        for fn in raw:
            fn()

    def step():
        for call in calls:
            call()
        callback.on_pre_optimizer_step(None, state, None)
        callback.on_optimizer_step(None, state, None)
        callback.on_step_end(None, state, None)
        trainer._metrics["train"].clear()  # the trainer's log() does this each logging step
        writer.deferred.clear()  # the next rollout-log write does this

    def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        return (time.perf_counter() - start) / rounds

    return min(timed(step) for _ in range(5)) - min(timed(bare) for _ in range(5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(tmp, "warm", 2, True)  # prepares the dataset cache both arms then share
        ratios, on_steps = [], []
        for i in range(args.pairs):  # on-off, off-on, ...: a steady drift in load cancels out
            if i % 2:
                off, on = run(tmp, f"off{i}", args.steps, False), run(tmp, f"on{i}", args.steps, True)
            else:
                on, off = run(tmp, f"on{i}", args.steps, True), run(tmp, f"off{i}", args.steps, False)
            ratios.append(on / off)
            on_steps.append(on)
            print(f"pair {i + 1}: on {on * 1e3:.2f} ms/step, off {off * 1e3:.2f} ms/step, ratio {on / off:.4f}",
                  flush=True)
    step = statistics.mean(on_steps)
    cost = direct_cost()
    spread = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
    print(f"end to end ({args.pairs} pairs x {args.steps} steps): ratio on/off median {statistics.median(ratios):.4f}, "
          f"mean {statistics.mean(ratios):.4f} +- {spread:.4f} (standard error), "
          f"range {min(ratios):.4f}-{max(ratios):.4f}")
    print(f"direct: {cost * 1e3:.4f} ms per step = {100 * cost / step:.3f} % of the mean step ({step * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
