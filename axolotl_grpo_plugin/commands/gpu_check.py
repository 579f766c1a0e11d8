"""Measure on a GPU what the planner predicts: `axolotl-grpo gpu-check` (scripts/gpu-check.sh).

For each case (cases.py) it runs `axolotl train` with the plugin for a few GRPO steps with
transformers generation in bf16 on a Qwen2.5-1.5B-shaped model with random weights (model.py;
nothing is downloaded), records per step the peak GPU memory, tokens per second and the step's
time parts, runs `axolotl-grpo plan` on the same config, and writes OUT/gpu-check.json
(rewritten after each case, so an interrupted check keeps what it measured) and a table.
A case that cannot run (no GPU, too little memory, Axolotl missing, the time budget spent)
is listed as skipped with its reason. docs/scaling.md says how to read it against the planner.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..gpu_check.cases import EMULATED_CASES, GPU_CASES, Case, write_config
from ..gpu_check.measure import TrainRun, child_env, run_train, summarize
from ..gpu_check.model import build_model
from ..system.safe_files import replacing, unmakeable_folder
from .flags import at_least, positive_float, prog


EPILOG = """examples:
  bash scripts/gpu-check.sh                    # on the GPU machine (installs the carried wheelhouse first)
  bash scripts/gpu-check.sh --emulate          # on CPU: the same runs, tiny and in fp32 (plumbing only)
  axolotl-grpo gpu-check --model Qwen/Qwen2.5-1.5B-Instruct     # a GPU machine with network
  axolotl-grpo gpu-check --cases full --steps 5

ratio = measured_peak_gib / planned_peak_gib: the step's peak reserved memory against the planner's
peak, which adds ~1 GiB for the CUDA context and allocator slack; outside 0.85-1.15 the planner needs
fixing (docs/scaling.md)."""

PACKAGES = ("torch", "transformers", "accelerate", "peft", "datasets", "trl", "axolotl", "axolotl-grpo-plugin")
NEEDED_MODULES = ("axolotl.cli.main", "axolotl.train", "axolotl.core.builders.rl", "axolotl_grpo_plugin.plugin")
MIN_CASE_S = 60  # a case needs about this much at least: start, load, two steps


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog("gpu-check"), description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/gpu-check", help="folder for gpu-check.json, the configs and "
                   "each run's log (default: %(default)s)")
    p.add_argument("--emulate", action="store_true",
                   help="run on CPU with a tiny shape in fp32: proves the kit, GPU figures stay null")
    p.add_argument("--model", help="a model id or folder to use instead of the random-weight Qwen2.5-1.5B shape "
                   "(needs network for an id)")
    p.add_argument("--cases", nargs="+", metavar="NAME", help="run only these (default: all)")
    p.add_argument("--steps", type=at_least(1, "e.g. --steps 3 (the default)"),
                   default=3, help="GRPO steps per case (default: %(default)s; the first "
                   "is left out of the time figures)")
    p.add_argument("--budget-s", type=positive_float, default=420,
                   help="wall-clock seconds for all cases; a case that cannot start in what is left is "
                   "skipped (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.monotonic()
    out = Path(args.out).resolve()
    if why := unmakeable_folder(out):  # before any case runs, not in a traceback after
        print(f"error: --out = {args.out!r}: {why}. Fix: pass a writable folder with --out DIR", file=sys.stderr)
        return 2
    gpu = None if args.emulate else read_gpu()
    cases = [c for c in (EMULATED_CASES if args.emulate else GPU_CASES) if not args.cases or c.name in args.cases]
    if not cases:
        known = ", ".join(c.name for c in (EMULATED_CASES if args.emulate else GPU_CASES))
        print(f"error: --cases {' '.join(args.cases)}: no such case; the cases are {known}", file=sys.stderr)
        return 2
    report = {"device": describe_device(gpu, args.emulate), "emulated": args.emulate, "versions": versions(),
              "model": args.model or "random weights, Qwen2.5-1.5B-Instruct's shape" + (" (tiny)" if args.emulate else ""),
              "steps": args.steps, "cases": []}
    blocker = why_nothing_runs(gpu, args.emulate)
    model = args.model
    if blocker is None and model is None:
        print("==> building the model (random weights, no download)", flush=True)
        model = str(build_model(out / "model", tiny=args.emulate))
    for case in cases:
        left = args.budget_s - (time.monotonic() - started)
        reason = blocker or (f"time budget: {left:.0f} s of --budget-s {args.budget_s:g} left, a case needs "
                             f"{MIN_CASE_S}" if left < MIN_CASE_S else None)
        if reason:
            result = {"name": case.name, "describe": case.describe(), "skipped": reason}
        else:
            print(f"==> {case.name}: {case.describe()}", flush=True)
            result = run_case(case, model, out / case.name, args, gpu, left)
        report["cases"].append(result)
        write_json(out / "gpu-check.json", report)
    report["seconds"] = round(time.monotonic() - started, 1)
    write_json(out / "gpu-check.json", report)
    print(table(report))
    print(f"\nfull results: {out / 'gpu-check.json'}; each case's log: {out}/CASE/train.log")
    measured = [c for c in report["cases"] if "skipped" not in c]
    return 0 if measured else 1


def why_nothing_runs(gpu: dict | None, emulate: bool) -> str | None:
    if not emulate and gpu is None:
        return ("no CUDA GPU (nvidia-smi found none): run it on a GPU machine, or with --emulate on CPU "
                "to check the kit")
    # in a child: importing Axolotl (bitsandbytes) may open a CUDA context, which this process
    # must not hold while it measures
    done = subprocess.run([sys.executable, "-c", "import " + ", ".join(NEEDED_MODULES)], capture_output=True,
                          text=True, timeout=600, env=child_env(offline=True))
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return (f"Axolotl does not import ({error}): the wheelhouse lacks a package; run "
                "`bash scripts/gpu-wheels.sh` where pip works and carry .gpu-wheels, or pip install axolotl")
    return None


def run_case(case: Case, model: str, case_dir: Path, args, gpu: dict | None, left_s: float) -> dict:
    config = write_config(case, model, case_dir, args.steps, on_gpu=not args.emulate)
    result = {"name": case.name, "describe": case.describe(), "config": str(config)}
    plan = run_plan(config, gpu, case_dir / "plan.json")
    result |= plan
    if gpu and plan.get("planned_peak_gib") and plan["planned_peak_gib"] > gpu["free_gib"]:
        result["skipped"] = (f"too little GPU memory: the planner says {plan['planned_peak_gib']:.1f} GiB, "
                             f"{gpu['free_gib']:.1f} GiB is free")
        return result
    offline = not args.model or Path(args.model).exists()
    run: TrainRun = run_train(config, case_dir / "train.log", timeout_s=left_s, offline=offline,
                              sample_smi=(lambda: smi_used_gib()) if gpu else None)
    summary = summarize(run.steps)
    result |= {"seconds": round(run.seconds, 1), "returncode": run.returncode, **summary,
               "measured_peak_gib": summary["peak_reserved_gib"], "smi_peak_gib": run.smi_peak_gib}
    if result["measured_peak_gib"] and result.get("planned_peak_gib"):
        result["ratio"] = round(result["measured_peak_gib"] / result["planned_peak_gib"], 3)
    else:
        result["ratio"] = None
    if run.oom:
        result["skipped"] = f"out of memory after {summary['steps']} step(s): {run.oom[:200]}"
    elif run.returncode is None and summary["steps"] >= args.steps:
        result["note"] = f"stopped at the time budget ({left_s:.0f} s) after its last step, while exiting"
    elif run.returncode is None:
        result["skipped"] = f"stopped at the time budget ({left_s:.0f} s) after {summary['steps']} step(s)"
    elif run.returncode != 0 or summary["steps"] == 0:
        result["skipped"] = (f"axolotl train exited {run.returncode} after {summary['steps']} step(s); "
                             f"see {run.log}")
        result["log_tail"] = run.tail
    return result


def run_plan(config: Path, gpu: dict | None, out: Path) -> dict:
    """`axolotl-grpo plan CONFIG --json --from-data` for this card (an H100's 80 GB when none)."""
    memory = gpu["memory_gib"] if gpu else 79.6
    command = [sys.executable, "-m", "axolotl_grpo_plugin.commands", "plan", str(config), "--json", "--from-data",
               "--processes", "1", "--gpu-memory", f"{memory:.1f}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"planned_peak_gib": None, "plan_error": (done.stderr or done.stdout).strip()[-500:]}
    out.write_text(done.stdout, encoding="utf-8")
    plan = json.loads(done.stdout)
    (entry,) = plan["gpus"].values()
    return {"planned_peak_gib": round(entry["trainer_peak_gib"], 3), "planned_load_gib": round(entry["trainer_load_gib"], 3),
            "planned_items_gib": {k: round(v, 3) for k, v in entry["items_gib"].items()},
            "prompt_tokens": plan["prompt_tokens"]}


def read_gpu() -> dict | None:
    """GPU 0 from nvidia-smi (this process never touches CUDA: no context, no memory held)."""
    fields = query_smi("name,memory.total,memory.used,driver_version")
    if not fields:
        return None
    name, total, used, driver = fields
    return {"name": name, "memory_gib": float(total) / 1024, "free_gib": (float(total) - float(used)) / 1024,
            "driver": driver}


def smi_used_gib() -> float | None:
    fields = query_smi("memory.used")
    return float(fields[0]) / 1024 if fields else None


def query_smi(fields: str) -> list[str] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits", "-i", "0"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    return [f.strip() for f in line.split(",")] if line else None


def describe_device(gpu: dict | None, emulate: bool) -> str:
    if gpu:
        return f"{gpu['name']}, {gpu['memory_gib']:.1f} GiB, driver {gpu['driver']}"
    return f"CPU ({cpu_name()}){', emulated' if emulate else ''}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    if found["axolotl-grpo-plugin"] is None:  # scripts/gpu-check.sh runs the checkout from PYTHONPATH
        found["axolotl-grpo-plugin"] = checkout_version()
    try:
        import torch

        found["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return found


def checkout_version() -> str:
    """The plugin's version and, in a git checkout, its commit: which code a carried tree measured."""
    from .. import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__} (checkout{' ' + commit if commit else ''})"


def write_json(path: Path, report: dict) -> None:
    with replacing(path) as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")


def table(report: dict) -> str:
    def num(value, fmt="{:.2f}"):
        return fmt.format(value) if isinstance(value, (int, float)) else "-"

    lines = [f"GPU check on {report['device']}", f"model: {report['model']}", "",
             f"{'case':<16}{'measured GiB':>13}{'planned GiB':>12}{'ratio':>7}{'tokens/s':>10}{'step s':>8}"
             f"{'gen s':>7}{'opt s':>7}"]
    for case in report["cases"]:
        parts = case.get("step_parts") or {}
        lines.append(f"{case['name']:<16}{num(case.get('measured_peak_gib')):>13}{num(case.get('planned_peak_gib')):>12}"
                     f"{num(case.get('ratio')):>7}{num(case.get('tokens_per_s'), '{:.0f}'):>10}"
                     f"{num(parts.get('step'), '{:.1f}'):>8}{num(parts.get('generation'), '{:.1f}'):>7}"
                     f"{num(parts.get('optimizer'), '{:.1f}'):>7}")
        if "skipped" in case:
            lines.append(f"    skipped: {case['skipped']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
