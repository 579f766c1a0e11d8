"""CPU time of `axolotl-grpo check`, whole processes, against the previous order (issue 31, item 3).

`check` now runs the plugin's own checks before it imports Axolotl's schema (and with it torch,
transformers, peft, bitsandbytes), and the dataset dry run (`datasets`) after the cheap checks;
a full OK validates with Axolotl's schema classes without importing `axolotl.utils.config`.
The reference is the previous order: the same check with Axolotl's validation modules imported
first, as `check` imported them before this change. Each measurement is a fresh child process;
CPU = user + system of the child (`os.wait4`), so a loaded machine inflates wall time, not this.
Side by side in one run, alternating which goes first, median of --repeats:

1. a plugin-level problem: configs/smoke.yaml with `correctness` misspelled (exit 2)
2. a missing local dataset file, written without `./` (exit 2)
3. a full OK on configs/smoke.yaml (exit 0)

Run from the repository root (the embedded model must be built: `axolotl-grpo embedded build`):
    python bench/bench_check.py --repeats 3
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

import yaml


REPO = Path(__file__).resolve().parents[1]
REFERENCE = ("import sys, axolotl.utils.config, axolotl.integrations.base\n"
             "from axolotl_grpo_plugin.check.command import main\nsys.exit(main(sys.argv[1:]))")
CURRENT = "import sys\nfrom axolotl_grpo_plugin.check.command import main\nsys.exit(main(sys.argv[1:]))"


def cases(folder: Path) -> dict[str, tuple[Path, int]]:
    smoke = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    smoke["base_model"] = str(REPO / smoke["base_model"])
    smoke["datasets"][0]["path"] = str(REPO / smoke["datasets"][0]["path"])
    typo = {**smoke, "trl": {**smoke["trl"], "reward_funcs": ["corectness", "int"]}}
    missing = {**smoke, "datasets": [{"path": "data/gsm8k_train.jsonl", "type": "gsm8k"}]}
    out = {}
    for name, cfg, code in (("reward typo", typo, 2), ("missing data file", missing, 2), ("full OK (smoke)", smoke, 0)):
        path = folder / f"{name.split()[0]}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out[name] = (path, code)
    return out


def cpu_seconds(program: str, config: Path, expected: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `check CONFIG --cpu` in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", program, str(config), "--cpu"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != expected:
        raise SystemExit(f"{config.name}: exit {code}, expected {expected}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, (config, code) in cases(Path(tmp)).items():
            runs = {"current": [], "reference": []}
            for i in range(args.repeats):
                order = ("current", "reference") if i % 2 == 0 else ("reference", "current")
                for which in order:
                    runs[which].append(cpu_seconds(CURRENT if which == "current" else REFERENCE, config, code))
            cur = statistics.median(c for c, _ in runs["current"])
            ref = statistics.median(c for c, _ in runs["reference"])
            wall = statistics.median(w for _, w in runs["current"])
            rows.append(f"| {name} | {cur:.2f} | {ref:.2f} | {ref / cur:.1f}x | {wall:.1f} |")
    print(f"CPU seconds, median of {args.repeats} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    print("| case | check (CPU s) | previous order (CPU s) | less CPU | check wall (s) |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
