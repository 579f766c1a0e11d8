"""Benchmark of the embedded demo against the issue's targets, over several seeds.

Runs ``python -m axolotl_grpo_plugin.demo --rebuild-base`` once per seed (the base
is pre-trained again every time, so the wall time is the whole job a new user
waits for) and reports, per seed and as mean and spread (max - min):

* wall time and CPU time of the whole job (CPU time / cores is what an idle
  machine would need; on a shared machine wall time mostly measures the others);
* held-out strict-format compliance, answer accuracy and mean total reward, before
  and after GRPO (all 256 held-out problems, greedy), and the
  any-layout accuracy (last number right, tags or not) that separates format gains
  from reasoning gains, with the issue-21 target (any-layout gain >= 10 points
  within 300 s) checked per seed;
* sampled pass@1 and pass@8 in any layout (8 samples at the training temperature
  on the first 64 held-out problems), before and after.

Usage:  PYTHONPATH=. python bench/bench_demo.py [--seeds 0 1 2] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, work: Path, steps: int | None) -> dict:
    summary = work / f"seed{seed}.json"
    cmd = [sys.executable, "-m", "axolotl_grpo_plugin.demo", "--seed", str(seed), "--rebuild-base",
           "--quiet", "--base-dir", str(work / f"base{seed}"), "--output-dir", str(work / f"run{seed}"), "--json", str(summary)]
    if steps:
        cmd += ["--steps", str(steps)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"seed {seed} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(summary.read_text())
    result["wall_s"] = wall
    result["cpu_s"] = (after_cpu.ru_utime - before_cpu.ru_utime) + (after_cpu.ru_stime - before_cpu.ru_stime)
    return result


def any_layout_gain(r: dict) -> float:
    """Points of any-layout accuracy GRPO added: the figure issue 21's target is set in."""
    return 100 * (r["after"]["any_layout_accuracy"] - r["before"]["any_layout_accuracy"])


FIGURES = [
    ("wall time (s)", lambda r: r["wall_s"], "{:.0f}"),
    ("CPU time (s)", lambda r: r["cpu_s"], "{:.0f}"),
    ("format compliance before", lambda r: r["before"]["format_compliance"], "{:.1%}"),
    ("format compliance after", lambda r: r["after"]["format_compliance"], "{:.1%}"),
    ("accuracy before", lambda r: r["before"]["accuracy"], "{:.1%}"),
    ("accuracy after", lambda r: r["after"]["accuracy"], "{:.1%}"),
    ("accuracy gain", lambda r: r["after"]["accuracy"] - r["before"]["accuracy"], "{:+.1%}"),
    ("any-layout accuracy before", lambda r: r["before"]["any_layout_accuracy"], "{:.1%}"),
    ("any-layout accuracy after", lambda r: r["after"]["any_layout_accuracy"], "{:.1%}"),
    ("any-layout gain (points)", any_layout_gain, "{:+.1f}"),
    ("sampled pass@1 before", lambda r: r["before"]["pass_at_1"], "{:.1%}"),
    ("sampled pass@8 before", lambda r: r["before"]["pass_at_k"], "{:.1%}"),
    ("sampled pass@1 after", lambda r: r["after"]["pass_at_1"], "{:.1%}"),
    ("sampled pass@8 after", lambda r: r["after"]["pass_at_k"], "{:.1%}"),
    ("mean total reward before", lambda r: r["before"]["mean_total_reward"], "{:.3f}"),
    ("mean total reward after", lambda r: r["after"]["mean_total_reward"], "{:.3f}"),
]


def report(results: list[dict]) -> str:
    seeds = [r["seed"] for r in results]
    head = "| figure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | spread (max-min) |"
    lines = [head, "|" + "---|" * (len(seeds) + 3)]
    for name, get, fmt in FIGURES:
        values = [get(r) for r in results]
        cells = [fmt.format(v) for v in values]
        spread = fmt.format(max(values) - min(values)).lstrip("+")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt.format(statistics.mean(values))} | {spread} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the config's)")
    parser.add_argument("--out", default=None, help="write the raw per-seed results as JSON here")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as work:
        results = []
        for seed in args.seeds:
            results.append(run_seed(seed, Path(work), args.steps))
            print(f"seed {seed}: done in {results[-1]['wall_s']:.0f}s", file=sys.stderr, flush=True)
    print(f"cores: {os.cpu_count()}, load average at start: {load[0]:.1f}, at end: {os.getloadavg()[0]:.1f}")
    print(report(results))
    for r in results:
        gain = any_layout_gain(r)
        verdict = "meets" if gain >= 10 and r["wall_s"] <= 300 else "MISSES"
        print(f"seed {r['seed']}: any-layout gain {gain:+.1f} points in {r['wall_s']:.0f} s: "
              f"{verdict} the target (>= +10 points within 300 s)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
