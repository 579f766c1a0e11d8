"""The full reward audit of the cookbook set (configs/gsm8k.yaml's five rewards) on 32 prompts:
wall time of the whole command, beside the floor any tool reading the dataset pays (a fresh
interpreter importing `datasets`), in the same run. Target: under 10 s on 2 cores (issue 33).

    python bench/bench_audit.py [--repeats 3]

Prints one row per measurement (median of the repeats) and the machine's load average, since
the ratio to the floor is what survives a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
AUDIT = [sys.executable, "-m", "axolotl_grpo_plugin.audit", "configs/gsm8k.yaml",
         "--dataset", "axolotl_grpo_plugin/data/gsm8k_sample.jsonl", "--prompts", "32"]
FLOOR = [sys.executable, "-c", "import datasets"]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def in_process(repeats: int) -> float:
    """audit() once to import everything, then timed: the audit's own work (rows, 18 families,
    5 rewards, the determinism re-scoring) without the interpreter and imports."""
    os.chdir(ROOT)
    from axolotl_grpo_plugin.audit.core import audit

    kwargs = dict(prompts=32, dataset="axolotl_grpo_plugin/data/gsm8k_sample.jsonl")
    audit("configs/gsm8k.yaml", **kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        audit("configs/gsm8k.yaml", **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "audit.json")
        timed([*AUDIT, "--json", out])  # warm the datasets cache (the first read converts the jsonl)
        floor, audit = [], []
        for _ in range(args.repeats):  # interleaved: both see the same load
            floor.append(timed(FLOOR))
            audit.append(timed([*AUDIT, "--json", out]))
        import json

        inside = json.loads(Path(out).read_text())
    warm = in_process(args.repeats)
    f, a = statistics.median(floor), statistics.median(audit)
    print(f"cores: {os.cpu_count()}, load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"python -c 'import datasets'      {f:6.2f} s  (median of {args.repeats})")
    print(f"axolotl-grpo audit (32 prompts)  {a:6.2f} s  = {a / f:.2f} x the floor; target < 10 s")
    print(f"  of which audit() itself (config to verdict, `datasets` import included): {inside['seconds']:.2f} s")
    print(f"  audit() again in the same process (imports done): {warm:.2f} s (median of {args.repeats})")
    print(f"verdict: hackable={inside['hackable']}, total share "
          f"{inside['total']['ratio']:.0%} ({inside['total']['family']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
