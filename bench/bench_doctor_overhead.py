"""Run doctor overhead per logging step against the step time of the same run.

    python bench/bench_doctor_overhead.py tests/fixtures/doctor/demo.jsonl

Replays the recorded metric stream through `Doctor.observe` (what the callback runs each
`on_log`) 200 times and divides the mean time per call by the run's median `step_time`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from axolotl_grpo_plugin.observe.doctor import Doctor  # noqa: E402


def main(path: str, rounds: int = 200) -> None:
    logs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    start = time.perf_counter()
    for _ in range(rounds):
        doctor = Doctor()
        for i, entry in enumerate(logs):
            doctor.observe(entry, i + 1)
    per_call = (time.perf_counter() - start) / (rounds * len(logs))
    step = statistics.median(e["step_time"] for e in logs if "step_time" in e)
    print(f"{len(logs)} logged steps x {rounds}: {per_call * 1e6:.1f} us per on_log; "
          f"median step_time {step:.2f} s; overhead {per_call / step:.2e} of a step "
          f"({100 * per_call / step:.5f} %)")


if __name__ == "__main__":
    main(*sys.argv[1:])
