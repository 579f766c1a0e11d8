"""One GPU-check case: its config, the planner's figure for it, a few `axolotl train` steps measured,
and the verdict (measured against planned, or why it was skipped); the report's JSON and table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..system.safe_files import replacing
from .cases import Case, write_config
from .machine import smi_used_gib
from .measure import TrainRun, child_env, run_train, summarize


NEEDED_MODULES = ("axolotl.cli.main", "axolotl.train", "axolotl.core.builders.rl", "axolotl_grpo_plugin.plugin")


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
    if run.stopped_by:
        result["stopped_by"] = run.stopped_by
    # stopped before it exited: at the time budget, or by a signal to the check
    stopped = (f"the check was stopped ({run.stopped_by})" if run.stopped_by
               else f"stopped at the time budget ({left_s:.0f} s)")
    if run.oom:
        result["skipped"] = f"out of memory after {summary['steps']} step(s): {run.oom[:200]}"
    elif run.returncode is None and summary["steps"] >= args.steps:
        result["note"] = f"{stopped} after its last step, while exiting"
    elif run.returncode is None:
        result["skipped"] = (f"{stopped} after {summary['steps']} step(s)"
                             + ("; what they measured is kept" if run.stopped_by else ""))
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
