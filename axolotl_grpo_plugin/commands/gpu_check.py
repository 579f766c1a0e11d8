"""Measure on a GPU what the planner predicts: `axolotl-grpo gpu-check` (scripts/gpu-check.sh).

For each case (cases.py) it runs `axolotl train` with the plugin for a few GRPO steps with
transformers generation in bf16 on a Qwen2.5-1.5B-shaped model with random weights (model.py;
nothing is downloaded), records per step the peak GPU memory, tokens per second and the step's
time parts, runs `axolotl-grpo plan` on the same config, and writes OUT/gpu-check.json
(rewritten after each case, so an interrupted check keeps what it measured) and a table.
Cases run in the order --cases names them: put the ones a previous check skipped first.
A case that cannot run (no GPU, too little memory, Axolotl missing, the time budget spent)
is listed as skipped with its reason. SIGTERM (`timeout`) or Ctrl-C stops the running case,
keeps the steps it measured, lists the rest as skipped and writes the JSON.
docs/scaling.md says how to read it against the planner.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .. import __version__
from ..gpu_check.cases import EMULATED_CASES, GPU_CASES
from ..gpu_check.machine import describe_device, read_gpu, versions
from ..gpu_check.measure import StopRequested
from ..gpu_check.model import build_model
from ..gpu_check.run import run_case, table, why_nothing_runs, write_json
from ..system.safe_files import unmakeable_folder
from .flags import at_least, positive_float, prog


EPILOG = """examples:
  bash scripts/gpu-check.sh                    # on the GPU machine (installs the carried wheelhouse first)
  bash scripts/gpu-check.sh --emulate          # on CPU: the same runs, tiny and in fp32 (plumbing only)
  axolotl-grpo gpu-check --model Qwen/Qwen2.5-1.5B-Instruct     # a GPU machine with network
  axolotl-grpo gpu-check --cases full --steps 5

ratio = measured_peak_gib / planned_peak_gib: the step's peak reserved memory against the planner's
peak, which adds ~1 GiB for the CUDA context and allocator slack; outside 0.85-1.15 the planner needs
fixing (docs/scaling.md)."""

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
    p.add_argument("--cases", nargs="+", metavar="NAME", help="run only these, in this order (default: all)")
    p.add_argument("--steps", type=at_least(1, "e.g. --steps 3 (the default)"),
                   default=3, help="GRPO steps per case (default: %(default)s; the first "
                   "is left out of the time figures)")
    p.add_argument("--budget-s", type=positive_float, default=420,
                   help="wall-clock seconds for all cases, counted from the start of scripts/gpu-check.sh "
                   "when it runs this; a case that cannot start in what is left is skipped, a running "
                   "one is stopped at it (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.monotonic() - already_spent_s()
    out = Path(args.out).resolve()
    if why := unmakeable_folder(out):  # before any case runs, not in a traceback after
        print(f"error: --out = {args.out!r}: {why}. Fix: pass a writable folder with --out DIR", file=sys.stderr)
        return 2
    gpu = None if args.emulate else read_gpu()
    known = {c.name: c for c in (EMULATED_CASES if args.emulate else GPU_CASES)}
    if unknown := [name for name in args.cases or [] if name not in known]:
        print(f"error: --cases {' '.join(unknown)}: no such case{'s' if len(unknown) > 1 else ''}; the cases are "
              f"{', '.join(known)}", file=sys.stderr)
        return 2
    cases = [known[name] for name in dict.fromkeys(args.cases)] if args.cases else list(known.values())
    report = {"device": describe_device(gpu, args.emulate), "emulated": args.emulate, "versions": versions(__version__),
              "model": args.model or "random weights, Qwen2.5-1.5B-Instruct's shape" + (" (tiny)" if args.emulate else ""),
              "steps": args.steps, "cases": []}
    previous = stop_on_signals()
    try:
        stopped = None
        try:
            blocker = why_nothing_runs(gpu, args.emulate)
            model = args.model
            if blocker is None and model is None:
                print("==> building the model (random weights, no download)", flush=True)
                model = str(build_model(out / "model", tiny=args.emulate))
        except StopRequested as stop:
            stopped, blocker = stop.signal_name, None
        for case in cases:
            left = args.budget_s - (time.monotonic() - started)
            reason = (f"the check was stopped ({stopped}) before this case" if stopped else blocker
                      or (f"time budget: {left:.0f} s of --budget-s {args.budget_s:g} left, a case needs "
                          f"{MIN_CASE_S}" if left < MIN_CASE_S else None))
            if reason:
                result = {"name": case.name, "describe": case.describe(), "skipped": reason}
            else:
                print(f"==> {case.name}: {case.describe()}", flush=True)
                try:
                    result = run_case(case, model, out / case.name, args, gpu, left)
                except StopRequested as stop:  # outside the training run (the planner, the config)
                    stopped = stop.signal_name
                    result = {"name": case.name, "describe": case.describe(),
                              "skipped": f"the check was stopped ({stopped}) before this case trained"}
                stopped = stopped or result.get("stopped_by")
            report["cases"].append(result)
            write_json(out / "gpu-check.json", report)
    finally:  # also when something else ends the loop: Ctrl-C is Python's own again
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report["seconds"] = round(time.monotonic() - started, 1)
    write_json(out / "gpu-check.json", report)
    print(table(report))
    print(f"\nfull results: {out / 'gpu-check.json'}; each case's log: {out}/CASE/train.log")
    measured = [c for c in report["cases"] if "skipped" not in c]
    if stopped:
        return 128 + getattr(signal, stopped)
    return 0 if measured else 1


def already_spent_s() -> float:
    """Seconds since scripts/gpu-check.sh started ($GPU_CHECK_STARTED, Unix time): the wheelhouse
    install counts against --budget-s too. 0 when unset or not a time in the last hour."""
    try:
        spent = time.time() - float(os.environ.get("GPU_CHECK_STARTED", ""))
    except ValueError:
        return 0.0
    return spent if 0 <= spent < 3600 else 0.0


def stop_on_signals() -> dict:
    """The first SIGTERM or SIGINT ends the running case where it is (measure.run_train keeps its
    steps) and puts the previous handlers back, so a second one stops the check at once.
    Returns the previous handlers."""
    previous = {}

    def stop_requested(signum, _frame):
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise StopRequested(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, stop_requested)
    return previous












if __name__ == "__main__":
    sys.exit(main())
