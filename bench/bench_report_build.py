"""Time building the report data (read + collect + columns) for a large rollout log, this
checkout's report/data.py against the one at a baseline git commit, side by side in one run.

    python bench/bench_report_build.py --n 100000 --repeats 3 --baseline 010641d

Prints the median seconds of each and the ratio (this / baseline). The log is the seeded
synthetic one of bench/bench_report.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def baseline_module(commit: str):
    """report/data.py at `commit`, loaded inside the package so its relative imports work."""
    source = subprocess.run(["git", "show", f"{commit}:axolotl_grpo_plugin/report/data.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "data.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("axolotl_grpo_plugin.report._baseline_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build(module, records):
    data = module.collect(records)
    return module.columns(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="010641d", help="git commit of the baseline data.py")
    args = parser.parse_args()

    from bench_report import write_log

    from axolotl_grpo_plugin.report import data as current
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    baseline = baseline_module(args.baseline)
    with tempfile.TemporaryDirectory() as tmp:
        write_log(Path(tmp), args.n)
        records = list(read_rollouts(tmp))
    times = {"this": [], "baseline": []}
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        for name, module in (("baseline", baseline), ("this", current)):
            start = time.perf_counter()
            build(module, records)
            times[name].append(time.perf_counter() - start)
    this, base = statistics.median(times["this"]), statistics.median(times["baseline"])
    print(f"{len(records):,} rollouts, collect + columns, median of {args.repeats}: "
          f"this {this:.2f}s, baseline {args.baseline} {base:.2f}s, ratio {this / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
