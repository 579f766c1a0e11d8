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

and `python -c "import axolotl.utils.config"` alone, the yardstick of issue 51 (a full OK at most
half of it). `--before TREE` adds a column: the same check run from another checkout.

Run from the repository root (the embedded model must be built: `axolotl-grpo embedded build`):
    python bench/bench_check.py --repeats 3
    git worktree add /tmp/before BASE && python bench/bench_check.py --repeats 3 --before /tmp/before
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
             "from axolotl_grpo_plugin.commands.check import main\nsys.exit(main(sys.argv[1:]))")
IMPORT_ONLY = "import axolotl.utils.config"  # issue 51's yardstick: a full OK costs at most half of it
CURRENT = "import sys\nfrom axolotl_grpo_plugin.commands.check import main\nsys.exit(main(sys.argv[1:]))"


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


def cpu_seconds(program: str, config: Path, expected: int, tree: Path | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `check CONFIG --cpu` in a fresh process; `tree`: the
    checkout whose plugin it imports (run from there: `python -c` puts the working folder first)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", program, str(config), "--cpu"], cwd=tree or REPO, env=env,
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
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="another checkout (e.g. `git worktree add /tmp/before BASE`): its check is a column")
    args = parser.parse_args()
    arms = {"check": (CURRENT, None), "previous order": (REFERENCE, None)}
    if args.before:  # a checkout from before the commands/ package ran its check from check/command.py
        tree = args.before.resolve()
        old = not (tree / "axolotl_grpo_plugin" / "commands" / "check.py").is_file()
        arms["before"] = (CURRENT.replace(".commands.check ", ".check.command ") if old else CURRENT, tree)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, (config, code) in cases(Path(tmp)).items():
            runs: dict[str, list[tuple[float, float]]] = {arm: [] for arm in arms}
            for i in range(args.repeats):
                for arm in list(arms)[i % len(arms):] + list(arms)[:i % len(arms)]:  # rotating order
                    runs[arm].append(cpu_seconds(*arms[arm][:1], config, code, arms[arm][1]))
            cpu = {arm: statistics.median(c for c, _ in r) for arm, r in runs.items()}
            wall = statistics.median(w for _, w in runs["check"])
            rows.append(f"| {name} | {cpu['check']:.2f} | "
                        + (f"{cpu['before']:.2f} | " if args.before else "")
                        + f"{cpu['previous order']:.2f} | {wall:.1f} |")
        yardstick = statistics.median(cpu_seconds(IMPORT_ONLY, config, 0)[0] for _ in range(args.repeats))
    print(f"CPU seconds, median of {args.repeats} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}); "
          f"`import axolotl.utils.config` alone: {yardstick:.2f} s (half: {yardstick / 2:.2f} s)")
    before = " before (CPU s) |" if args.before else ""
    print(f"| case | check (CPU s) |{before} previous order (CPU s) | check wall (s) |")
    print("| --- | --- |" + (" --- |" if args.before else "") + " --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
