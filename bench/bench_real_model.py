"""A real pretrained model end to end (issue 32, item 7): base -> R1 cold-start SFT -> GRPO
through the real vLLM server on CPU, every stage scored on the same held-out GSM8K problems.

    . .venv-vllm/bin/activate
    nohup python bench/bench_real_model.py --model models/smollm2-135m \\
        --heldout PATH/gsm8k/test.jsonl --out outputs/bench-real-model > bench-real-model.log 2>&1 &

Resumable: each stage writes its result under --out only when it finished (atomically), and a
re-run skips the stages whose result is there. Stages, in order:

    eval-base        the model as fetched
    sft              `axolotl train --sft-config` from --model        (OUT/sft)
    eval-sft
    rs, sft2, eval-sft2     with --rejection-rounds 1: R1's rejection-sampling round (OUT/rs.jsonl:
                     the SFT model's own in-format replies to train prompts; OUT/sft2: SFT on them)
    rs2, sft3, eval-sft3    with --rejection-rounds 2: the same from OUT/sft2, and so on
    grpo-sN, eval-grpo-sN   for each --seeds N: `axolotl train --grpo-config` from the last SFT
                     (OUT/sft, or OUT/sft{R+1} after R rejection rounds),
                     server mode, the plugin's autostarted `axolotl vllm-serve` on vLLM's CPU build
    rl-rs, rl-sft, eval-rl-sft, rl-grpo-sN, eval-rl-grpo-sN
                     with --rl-rows-from S: R1's third stage, rejection sampling from the RL
                     checkpoint: OUT/grpo-sS answers the next --rs-problems train prompts
                     (OUT/rl-rs.jsonl), the last SFT model is fine-tuned on its in-format
                     replies (OUT/rl-sft), then GRPO from that for each --seeds
    rl2-rs, rl2-sft, ... with --rl-rounds 2: the same again, rows from OUT/rl-grpo-sS
                     (--rl-all-rows: rl2-sft-all, on the rows of both rounds)
                     --rl-rows FILE: round 1's rows are FILE, rows an earlier run saved (its
                     OUT/rlK-rs.jsonl, or bench/saved_rows.py's replies): stage rl-rs writes
                     them to OUT/rl-rs.jsonl instead of sampling, and the GRPO level before it
                     (grpo-sN) does not run; the chain goes on at rl-sft
    report           OUT/summary.json, OUT/summary.md, OUT/reward_curve.png, OUT/before_after.png;
                     per GRPO level (grpo, rl-grpo, ...) the seeds' mean total reward and spread

--last-seeds N...: the GRPO seeds from the chain's last SFT model only; every earlier level runs
--seeds. The seed spread the targets ask for, at the last level, without 3 seeds at each level:
`--seeds 0 --rl-rows-from 0 --rl-rounds 2 --last-seeds 0 1 2` (about 3.4 h on 2 idle cores).
That chain's only link between its levels is text: the rows a GRPO model wrote, so it can
be cut where a run saved them (bench/saved_rows.py keeps the replies alone, no GSM8K text;
--train-data rebuilds the rows), each part in a fresh --out:

    --rl-rows OUT/rl2-rs.jsonl --seeds 0 1 2                    the last level alone: cold start,
                                                                SFT on the rows, 3 GRPO seeds
    --rl-rows OUT/rl-rs.jsonl --rl-rows-from 0 --rl-rounds 2 --last-seeds 0 1 2
                                                                the chain from round 1's rows on

Scoring (axolotl_grpo_plugin.evaluate, the GRPO config's rewards): --problems held-out rows,
greedy (strict/soft format %, correctness %, mean total reward) and --samples completions at
T=--temperature (pass@k). With a GRPO config that has `grpo_plugin.tools` (the tool chain:
--sft-config configs/smollm2-gsm8k-tools-sft.yaml --grpo-config configs/smollm2-gsm8k-tools-grpo-cpu.yaml
--max-new-tokens 512), scoring runs the tool loop as training does and adds tool calls per answer
and the tool error rate. GRPO's step time is the plugin's own breakdown (`time/generation`,
`time/rewards`, `time/weight_sync`, `time/optimizer`, in the run's rollout log), as a user sees it.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from saved_rows import is_replies_file, rebuild_rows  # noqa: E402  (bench/, beside this file)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_json(path: Path, data: dict) -> None:
    from axolotl_grpo_plugin.system.safe_files import write_atomic

    write_atomic(path, json.dumps(data, indent=2, default=str))


def local_dataset(entry: dict, path: Path) -> dict:
    """A config's dataset entry pointed at a local jsonl copy (offline: no Hub `name`/`split`)."""
    entry = {k: v for k, v in entry.items() if k not in ("name", "split")}
    return {**entry, "path": str(path.resolve()), "ds_type": "json"}


def derived_config(source: Path, out: Path, **changes) -> Path:
    """`source` with top-level keys replaced, written beside the stage's output."""
    cfg = yaml.safe_load(source.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def group_size_changes(config: Path, generations: int) -> dict:
    """Config changes for `generations` completions per prompt at the config's prompts per step
    (micro_batch_size x gradient_accumulation_steps / num_generations): only the accumulation grows,
    so a step sees the same prompts and each micro-batch the same memory."""
    cfg = yaml.safe_load(config.read_text())
    micro, accumulation = cfg["micro_batch_size"], cfg.get("gradient_accumulation_steps", 1)
    prompts = micro * accumulation // cfg["trl"]["num_generations"]
    if (prompts * generations) % micro:
        raise SystemExit(f"--num-generations {generations}: {prompts} prompts a step x {generations} "
                         f"completions is not a multiple of {config.name}'s micro_batch_size {micro}; "
                         f"fix: a G with {prompts} x G divisible by {micro}")
    return {"trl": {"num_generations": generations},
            "gradient_accumulation_steps": prompts * generations // micro}


def saved_weights(folder: Path) -> Path:
    """What a finished training run leaves in its output folder: the model's weights, or a LoRA
    run's adapter (scoring merges it into its base: sampling/models.py)."""
    adapter = folder / "adapter_model.safetensors"
    return adapter if adapter.is_file() else folder / "model.safetensors"


def train_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "axolotl.cli.main", "train", str(config)]


def train(config: Path, out: Path, log_path: Path) -> float:
    """`axolotl train CONFIG` in a subprocess (its output appended to `log_path`: a stage that
    resumes from a checkpoint keeps the log of the run it resumes); the wall time.

    OMP_NUM_THREADS is set to the core count (unless the caller set it): accelerate gives a
    CPU-only trainer one thread otherwise, which made SFT steps 1.89x and GRPO's server-mode
    steps 1.26x slower (bench/bench_threads.py). The environment is the one the demo gives its
    trainer (offline, this interpreter's bin/ first on PATH: Axolotl starts `accelerate` from it)."""
    from axolotl_grpo_plugin.gpu_check.measure import stop_group
    from axolotl_grpo_plugin.system.childenv import offline_child_env
    from axolotl_grpo_plugin.system.launch import available_cores

    env = offline_child_env(REPO)
    env.setdefault("OMP_NUM_THREADS", str(available_cores()))
    command = train_command(config)
    started = time.perf_counter()
    with open(log_path, "a") as f:
        f.write(f"==> {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(command)}\n")
        f.flush()
        # its own process group: stopping this bench (SIGTERM, Ctrl-C) stops `accelerate` and the
        # trainer under it, whose plugin then stops the vLLM server; killing `accelerate` alone
        # left the trainer and the server running
        child = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                 start_new_session=True)
        try:
            rc = child.wait()
        except BaseException:
            stop_group(child)
            raise
    wall = time.perf_counter() - started
    if rc != 0 or not saved_weights(out).is_file():
        raise SystemExit(f"training failed (exit {rc}, no {saved_weights(out)}): see {log_path}")
    return wall


def cpu_has_bfloat16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """AMX or AVX512-BF16 in the CPU's flags: where vLLM's CPU build runs bfloat16 natively."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return True  # not Linux: nothing known, nothing said
    return "amx_bf16" in flags or "avx512_bf16" in flags


@functools.cache
def warn_if_bfloat16_is_emulated(dtype: str) -> None:
    """--score-dtype bfloat16 is the fast choice only with bfloat16 units (2.8x float32 with
    AMX); without them the sampling stages were seen to run several times slower."""
    import torch

    if dtype in ("bfloat16", "bf16") and not torch.cuda.is_available() and not cpu_has_bfloat16_units():
        log(f"warning: --score-dtype {dtype}: this CPU has no bfloat16 units (neither amx_bf16 nor "
            "avx512_bf16 in /proc/cpuinfo), where vLLM's bfloat16 is likely slower than float32: "
            "the rejection round ran 58 min unfinished on an AMD EPYC without them, against "
            "657-705 s elsewhere (docs/benchmarks.md). Fix: leave --score-dtype out here (the GRPO config's float32), "
            "and compare scores within one dtype")


def sampling_config(config: Path, args) -> dict:
    """`config` as the scorer and the rejection round read it: --temperature, --score-dtype."""
    from axolotl_grpo_plugin.sampling.prompts import load_config

    cfg = load_config(config)
    cfg.setdefault("trl", {})["temperature"] = args.temperature
    cfg["vllm"] = {k: v for k, v in (cfg.get("vllm") or {}).items() if k in ("dtype", "enforce_eager")}
    if args.score_dtype:
        warn_if_bfloat16_is_emulated(args.score_dtype)
        cfg["vllm"]["dtype"] = args.score_dtype
    return cfg


def in_child(function, *args):
    """`function(*args)` in a fresh (spawned) process: the in-process vLLM engine that scoring and
    sampling load kept 2.7 GB of the 0.5B's run resident in this process afterwards, on a 24 GB
    machine where the next stage's trainer and server need 19-21 GB (the GRPO steps ran ~1.7x slower)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def score(config: Path, model: Path, args) -> dict:
    """The held-out scores of `model` with `config`'s rewards (axolotl_grpo_plugin.evaluate), in a child process."""
    return in_child(score_here, config, model, args)


def score_here(config: Path, model: Path, args) -> dict:
    from axolotl_grpo_plugin.evaluate import evaluate

    cfg = sampling_config(config, args)
    started = time.perf_counter()
    result = evaluate(cfg, str(model), dataset=str(args.heldout), limit=args.problems,
                      samples=args.samples, max_new_tokens=args.max_new_tokens, seed=0,
                      progress=False)
    records = result.records
    greedy = [r for r in records if r["kind"] == "greedy"]
    soft = [r["rewards"].get("soft_format_reward_func", math.nan) for r in greedy]
    return {
        "model": str(model), "backend": result.backend, "problems": result.n_problems,
        "samples": result.samples, "temperature": result.temperature,
        "max_new_tokens": result.max_new_tokens, "dtype": cfg["vllm"].get("dtype"),
        "strict_format": result.format_compliance,
        "soft_format": sum(1 for v in soft if v == v and v > 0) / max(1, len(greedy)),
        "correct_greedy": result.accuracy,
        "any_layout": result.any_layout_accuracy,  # the final number wherever written (NaN: no numeric answers)
        "pass_at_k": result.pass_at_k,
        "reward_mean": result.reward_mean, "reward_means": result.reward_means,
        "mean_length": result.mean_length,
        "tools": result.tools,  # calls per answer, error rate (empty without grpo_plugin.tools)
        # which problems the greedy answer got right, for paired comparisons (bench/paired_heldout.py)
        "greedy_right": sorted(r["problem"] for r in greedy if r["correct"]),
        "greedy_right_any_layout": sorted(r["problem"] for r in greedy if r["any_layout"]),
        "wall_s": time.perf_counter() - started,
    }


def rejection_sample(config: Path, model: Path, args, path: Path, round_: int) -> dict:
    """R1's rejection-sampling round (axolotl_grpo_plugin.evaluate.rejection): `model` answers
    round `round_`'s --rs-problems train prompts (round 1 the first ones, round 2 the next, so a
    round never re-learns its predecessor's prompts), greedy and --rs-samples at --temperature,
    and one in-format reply per prompt is kept in `path` as a chat row for SFT. In a child process."""
    return in_child(rejection_sample_here, config, model, args, path, round_)


def rejection_sample_here(config: Path, model: Path, args, path: Path, round_: int) -> dict:
    from axolotl_grpo_plugin.evaluate import evaluate
    from axolotl_grpo_plugin.evaluate.rejection import write_replies

    if not args.train_data:
        raise SystemExit("--rejection-rounds samples train prompts: pass --train-data PATH/train.jsonl")
    first = (round_ - 1) * args.rs_problems
    with args.train_data.open() as rows:
        chosen = [row for i, row in enumerate(rows) if first <= i < first + args.rs_problems]
    prompts = path.with_name(path.stem + "-prompts.jsonl")
    prompts.write_text("".join(chosen))
    started = time.perf_counter()
    result = evaluate(sampling_config(config, args), str(model), split="train",
                      dataset=str(prompts), samples=args.rs_samples,
                      max_new_tokens=args.max_new_tokens, seed=1, progress=False)
    _, kept, correct = write_replies(result.records, path)
    return {"prompts": result.n_problems, "first_prompt": first, "kept": kept, "kept_correct": correct,
            "samples": args.rs_samples, "greedy_strict_format": result.format_compliance,
            "wall_s": time.perf_counter() - started}


def step_times(run: Path) -> dict:
    """Mean seconds per step in each part of the plugin's own step-time breakdown (the run's
    `step_time` records: the `time/*` metrics), from step 2 on (step 1 includes the first push)."""
    from axolotl_grpo_plugin.rollouts.log import log_files, read_rollouts

    if not log_files(run):
        return {}
    records = [r["seconds"] for r in read_rollouts(run, everything=True)
               if r.get("type") == "step_time" and r["step"] >= 2]
    if not records:
        return {}
    parts = ("generation", "rewards", "weight_sync", "optimizer", "other", "step")
    return {p: sum(r.get(p, 0.0) for r in records) / len(records) for p in parts} | {"steps": len(records)}


def reward_curve(run: Path) -> list[tuple[int, float]]:
    """Mean total reward per training step, from the run's rollout log."""
    from axolotl_grpo_plugin.report.data import collect, curves
    from axolotl_grpo_plugin.rollouts.log import log_files, read_rollouts

    if not log_files(run):
        return []
    xs, ys = curves(collect(read_rollouts(run, {}, everything=True), max_rollouts=1))["reward"]
    return list(zip(xs, ys))


def plots(out: Path, results: dict, curves: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    written = []
    if curves:
        fig = Figure(figsize=(6, 3.4), dpi=100)
        ax = fig.subplots()
        for name, curve in curves.items():
            if curve:
                ax.plot([s for s, _ in curve], [v for _, v in curve], label=name, linewidth=1)
        ax.set_xlabel("GRPO step", fontsize=8)
        ax.set_ylabel("mean total reward (training rollouts)", fontsize=8)
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "reward_curve.png")
        written.append("reward_curve.png")
    if results:
        metrics = [("strict_format", "strict format"), ("soft_format", "soft format"),
                   ("correct_greedy", "correct (greedy)")]
        fig = Figure(figsize=(7, 3.4), dpi=100)
        left, right = fig.subplots(1, 2)
        names = list(results)
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            left.bar([j + i * width for j in range(len(metrics))],
                     [100 * results[name][k] for k, _ in metrics], width, label=name)
        left.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], [t for _, t in metrics],
                        fontsize=7)
        left.set_ylabel("% of held-out problems", fontsize=8)
        left.legend(fontsize=6, frameon=False)
        right.bar(names, [results[n]["reward_mean"] for n in names], color="#1f5f99")
        right.set_title("mean total reward (greedy)", fontsize=9)
        right.tick_params(labelsize=7)
        fig.tight_layout()
        fig.savefig(out / "before_after.png")
        written.append("before_after.png")
    return written


def grpo_levels(results: dict) -> dict:
    """The GRPO seeds scored from each SFT model (`grpo`, `rl-grpo`, `rl2-grpo-all`, ...): the seed
    spread of the mean total reward and of strict format, which the targets are stated over."""
    levels: dict[str, dict] = {}
    for name, r in results.items():
        run = re.fullmatch(r"(.*grpo(?:-all)?)-s(\d+)", name)
        if run:
            level = levels.setdefault(run[1], {"seeds": [], "rewards": [], "formats": []})
            level["seeds"].append(int(run[2]))
            level["rewards"].append(r["reward_mean"])
            level["formats"].append(r["strict_format"])
    return {prefix: {"seeds": v["seeds"], "reward_mean": sum(v["rewards"]) / len(v["rewards"]),
                     "reward_min": min(v["rewards"]), "reward_max": max(v["rewards"]),
                     "strict_format_min": min(v["formats"]), "strict_format_max": max(v["formats"])}
            for prefix, v in levels.items()}


def report(out: Path, args) -> None:
    results = {p.stem.removeprefix("eval-"): json.loads(p.read_text())
               for p in sorted(out.glob("eval-*.json"))}
    def order(name: str) -> tuple:  # base, sft, sft2 ..., the GRPO seeds, then R1's third stage
        if name == "base":
            return (0, 0)
        if name.startswith("sft"):
            return (1, int(name[3:] or 1))
        third = re.match(r"rl(\d*)-(sft|grpo)", name)
        if third:
            return (3, int(third[1] or 1), third[2] == "grpo", name)
        return (2, name)

    results = dict(sorted(results.items(), key=lambda kv: order(kv[0])))
    runs = {p.name: p for p in sorted(out.glob("*grpo-s*")) if p.is_dir()}
    curves = {name: reward_curve(run) for name, run in runs.items()}
    times = {name: step_times(run) for name, run in runs.items()}
    stages = json.loads((out / "stages.json").read_text()) if (out / "stages.json").is_file() else {}
    levels = grpo_levels(results)
    summary = {"results": results, "step_times": times, "stages": stages, "grpo_levels": levels,
               "plots": plots(out, results, curves), "command": " ".join(sys.argv)}
    write_json(out / "summary.json", summary)
    lines = ["| stage | strict format | soft format | correct (greedy) | any layout (greedy) | pass@8 "
             "| mean total reward | tool calls per answer | tool errors |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        pass_at_8 = r["pass_at_k"].get("pass@8")  # none with --samples 0
        tools = r.get("tools") or {}
        calls, errors = (f"{tools['tool_calls_per_answer']:.2f}", f"{tools['tool_error_rate']:.1%}") if tools else ("-", "-")
        any_layout = r.get("any_layout")  # none in results scored before evaluate counted it
        any_layout = None if any_layout is None or math.isnan(any_layout) else any_layout
        lines.append(f"| {name} | {r['strict_format']:.1%} | {r['soft_format']:.1%} | "
                     f"{r['correct_greedy']:.1%} | {'-' if any_layout is None else f'{any_layout:.1%}'} | "
                     f"{'-' if pass_at_8 is None else f'{pass_at_8:.1%}'} | "
                     f"{r['reward_mean']:.3f} | {calls} | {errors} |")
    for prefix, level in levels.items():
        lines.append(f"\n{prefix}: {len(level['seeds'])} seed(s) {level['seeds']}, mean total reward "
                     f"{level['reward_mean']:.3f} ({level['reward_min']:.3f}-{level['reward_max']:.3f}), "
                     f"strict format {level['strict_format_min']:.1%}-{level['strict_format_max']:.1%}")
    for name, t in times.items():
        if t:
            lines.append(f"\n{name}: steps 2-{t['steps'] + 1}, mean s/step: " + ", ".join(
                f"{k} {v:.1f}" for k, v in t.items() if k != "steps"))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    log("report: " + str(out / "summary.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True,
                        help="the fetched base model (axolotl-grpo fetch-model smollm2-135m)")
    parser.add_argument("--heldout", type=Path, required=True, help="GSM8K test jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench-real-model")
    parser.add_argument("--sft-config", type=Path, default=REPO / "configs" / "smollm2-gsm8k-sft.yaml")
    parser.add_argument("--grpo-config", type=Path,
                        default=REPO / "configs" / "smollm2-gsm8k-grpo-cpu.yaml")
    parser.add_argument("--train-data", type=Path,
                        help="local GSM8K train jsonl for both configs (offline; default: as written)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="a GRPO run per seed from the last SFT (none: stop after the SFT stages)")
    parser.add_argument("--last-seeds", type=int, nargs="*", metavar="N",
                        help="the GRPO seeds from the chain's last SFT model only (default: --seeds); "
                        "e.g. --seeds 0 --last-seeds 0 1 2 runs one seed at every earlier level")
    parser.add_argument("--grpo-steps", type=int, help="max_steps of each GRPO run (default: config)")
    parser.add_argument("--num-generations", type=int, metavar="G",
                        help="completions per prompt in each GRPO run (default: config); the prompts a "
                        "step stay as the config has them: gradient_accumulation_steps grows with G")
    parser.add_argument("--problems", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8, help="sampled completions for pass@k")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--score-dtype", help="vLLM's dtype for scoring (default: the GRPO config's "
                        "vllm.dtype); bfloat16 samples ~2.8x faster on CPUs with bfloat16 units "
                        "(bench/bench_vllm_cpu_dtype.py)")
    parser.add_argument("--port", type=int, default=8451, help="the vLLM server's port (GRPO)")
    parser.add_argument("--rejection-rounds", type=int, default=0, metavar="R",
                        help="after the SFT, R rounds of R1's rejection sampling: SFT again on the "
                        "last model's own in-format replies to train prompts (stages rs, sft2, "
                        "eval-sft2, then rs2, sft3, eval-sft3 ...); GRPO starts from the last")
    parser.add_argument("--rs-problems", type=int, default=512, help="train prompts it samples")
    parser.add_argument("--rs-samples", type=int, default=4,
                        help="sampled replies per prompt, besides the greedy one")
    parser.add_argument("--sft2-steps", type=int, default=64,
                        help="max_steps of each rejection round's SFT (8 rows a step in the shipped config)")
    parser.add_argument("--rl-rows-from", type=int, metavar="S",
                        help="R1's third stage: rejection sampling from GRPO seed S's model (a seed of "
                        "--seeds), SFT of the last SFT model on its replies, GRPO again (stages rl-*)")
    parser.add_argument("--rl-rounds", type=int, default=1, metavar="K",
                        help="with --rl-rows-from, K such rounds: round k's rows come from round "
                        "k-1's GRPO seed S and fresh train prompts, and round k's SFT starts again "
                        "from the last SFT model (stages rl2-rs, rl2-sft, ... for k >= 2)")
    parser.add_argument("--rl-rows", type=Path, metavar="FILE",
                        help="R1's third stage with round 1's rows from FILE, rows an earlier run saved "
                        "(its OUT/rlK-rs.jsonl, or its replies alone, bench/saved_rows.py, rebuilt with "
                        "--train-data), instead of sampling them from a GRPO run: stage rl-rs writes "
                        "them to OUT/rl-rs.jsonl, no grpo-sN runs, and the chain goes on at rl-sft "
                        "(with --rl-rounds K >= 2 and --rl-rows-from S, to rl2-rs and on)")
    parser.add_argument("--no-sft", action="store_true",
                        help="no cold start: GRPO (and any rejection round) from --model itself, for a "
                        "model that takes the R1 layout through the format rewards alone")
    parser.add_argument("--skip-base", action="store_true",
                        help="do not score the base model (known from an earlier run: 0 %% format)")
    parser.add_argument("--score-last-only", action="store_true",
                        help="score only the chain's last SFT model and its GRPO runs (what the targets "
                        "are stated on; ~3 min a model on 512 problems); every model is kept, and "
                        "bench/rescore_heldout.py scores the others later")
    parser.add_argument("--rl-all-rows", action="store_true",
                        help="with --rl-rounds K >= 2, round k's SFT trains on the rows of rounds 1..k "
                        "(--sft2-steps per round's rows; stages rl2-sft-all, rl2-grpo-all-sN, ...)")
    args = parser.parse_args(argv)
    if args.rl_rows and args.rl_rounds >= 2 and args.rl_rows_from is None:
        parser.error(f"--rl-rounds {args.rl_rounds}: round 2's rows come from a GRPO run of round 1: "
                     "pass --rl-rows-from S (a seed of --seeds, or of --last-seeds at the last level)")
    # a G the batch cannot hold is refused now, not after the SFT
    group_changes = group_size_changes(args.grpo_config, args.num_generations) if args.num_generations else {}
    if args.score_dtype:
        warn_if_bfloat16_is_emulated(args.score_dtype)  # now, not after the first hour's training
    for rows_file in [args.rl_rows] if args.rl_rows else []:
        first = rows_file.open().readline() if rows_file.is_file() else ""
        if '"messages"' not in first and not (rows_file.is_file() and is_replies_file(rows_file)):
            parser.error(f"--rl-rows {rows_file}: not a file of chat rows (a jsonl whose rows hold "
                         "`messages`, as a run's OUT/rl-rs.jsonl does) nor of replies (bench/saved_rows.py)")
        if '"messages"' not in first and not args.train_data:
            parser.error(f"--rl-rows {rows_file} holds replies without their questions: pass --train-data "
                         "PATH/gsm8k/train.jsonl to rebuild the rows")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stages_path = out / "stages.json"
    stages = json.loads(stages_path.read_text()) if stages_path.is_file() else {}

    def dataset_for(config: Path) -> dict:
        if not args.train_data:
            return {}
        return {"datasets": [local_dataset(yaml.safe_load(config.read_text())["datasets"][0], args.train_data)]}

    def stage(name: str, result: Path, work) -> None:
        if result.exists():
            log(f"{name}: done before, skipped ({result})")
            return
        log(f"{name}: started (load average {os.getloadavg()[0]:.1f})")
        started = time.perf_counter()
        work()
        stages[name] = {"wall_s": round(time.perf_counter() - started, 1),
                        "load_average_at_end": round(os.getloadavg()[0], 1)}
        write_json(stages_path, stages)
        log(f"{name}: finished in {stages[name]['wall_s']} s")
        try:
            report(out, args)
        except Exception as exc:  # the report is re-built after every stage; never stop the run
            log(f"report failed: {type(exc).__name__}: {exc}")

    grpo_cfg = args.grpo_config.resolve()

    def sft_on_replies(rows: list[Path], source: Path, model: Path) -> None:
        """--sft-config's SFT of `source` on rejection rounds' chat rows, into `model`:
        --sft2-steps per file of rows (8 rows a step: each row once)."""
        data = [{"path": str(r), "ds_type": "json", "type": "chat_template",
                 "field_messages": "messages", "roles_to_train": ["assistant"]} for r in rows]
        config = derived_config(args.sft_config.resolve(), model, base_model=str(source),
                                output_dir=str(model), datasets=data,
                                max_steps=args.sft2_steps * len(rows),
                                dataset_prepared_path=str(out / f"{model.name}-prepared"),
                                save_strategy="no")
        train(config, model, out / f"{model.name}.log")

    def scored(model: Path) -> None:
        if args.score_last_only and not is_last_level(model.name):
            log(f"eval-{model.name}: skipped (--score-last-only; bench/rescore_heldout.py scores it later)")
            return
        stage(f"eval-{model.name}", out / f"eval-{model.name}.json",
              lambda: write_json(out / f"eval-{model.name}.json", score(grpo_cfg, model, args)))

    def grpo_runs(source: Path, prefix: str, seeds: list[int]) -> None:
        """A GRPO run from `source` per seed (OUT/PREFIX-sN), each scored."""
        for seed in seeds:
            run = out / f"{prefix}-s{seed}"

            def run_grpo():
                changes = dict(base_model=str(source), output_dir=str(run), seed=seed,
                               dataset_prepared_path=str(out / "grpo-prepared"),
                               vllm={"port": args.port}, **dataset_for(args.grpo_config))
                if args.grpo_steps:
                    changes["max_steps"] = args.grpo_steps
                changes.update(group_changes)
                train(derived_config(grpo_cfg, run, **changes), run, out / f"{run.name}.log")

            stage(run.name, saved_weights(run), run_grpo)
            scored(run)

    def rejection_round(rs: str, teacher: Path | None, prompts_round: int, rows: list[Path],
                        source: Path, model: Path) -> None:
        """R1's rejection round: `teacher` answers round `prompts_round`'s train prompts (OUT/RS.jsonl,
        in-format replies kept; with no teacher, --rl-rows is copied there), `source` is
        fine-tuned on `rows` (those, or every round's) into `model`, which is scored."""
        def sample_rows():
            if teacher is None:
                return saved_rows(out / f"{rs}.jsonl")
            return rejection_sample(grpo_cfg, teacher, args, out / f"{rs}.jsonl", prompts_round)

        stage(rs, out / f"{rs}.json", lambda: write_json(out / f"{rs}.json", sample_rows()))
        stage(model.name, saved_weights(model), lambda: sft_on_replies(rows, source, model))
        scored(model)

    def saved_rows(path: Path) -> dict:
        """--rl-rows as round 1's rows at `path` (rebuilt from --train-data where it holds replies)."""
        from axolotl_grpo_plugin.system.safe_files import write_atomic

        if is_replies_file(args.rl_rows):
            rebuild_rows(args.rl_rows, args.train_data, grpo_cfg, path)
        else:
            write_atomic(path, args.rl_rows.read_text())
        with path.open() as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return {"rows_from": str(args.rl_rows.resolve()), "kept": len(rows),
                "kept_correct": sum(bool(r.get("correct")) for r in rows)}

    # Level 0 is GRPO from the SFT chain's model; level k >= 1 from R1's third stage's round k.
    last_level = args.rl_rounds if args.rl_rows_from is not None or args.rl_rows else 0

    def third_stage(k: int) -> str:  # round k's stage names: rl-rs, rl2-rs, ...
        return "rl" if k == 1 else f"rl{k}"

    def grpo_prefix(level: int) -> str:
        if level == 0:
            return "grpo"
        return f"{third_stage(level)}-grpo" + ("-all" if args.rl_all_rows and level > 1 else "")

    def seeds_at(level: int) -> list[int]:
        return args.last_seeds if level == last_level and args.last_seeds is not None else args.seeds

    def is_last_level(name: str) -> bool:
        """The chain's last SFT model or a GRPO run from it: what the targets are stated on."""
        if last_level:
            last_sft = f"{third_stage(last_level)}-sft" + ("-all" if args.rl_all_rows and last_level > 1 else "")
            last_grpo = grpo_prefix(last_level)
        else:
            last_sft, last_grpo = "sft" + (str(args.rejection_rounds + 1) if args.rejection_rounds else ""), "grpo"
        return name == last_sft or re.fullmatch(rf"{re.escape(last_grpo)}-s\d+", name) is not None

    for level in range(1 if args.rl_rows else 0, last_level):  # round level+1 reads this level's seed S
        teacher = out / f"{grpo_prefix(level)}-s{args.rl_rows_from}"
        if args.rl_rows_from not in seeds_at(level) and not saved_weights(teacher).is_file():
            raise SystemExit(f"--rl-rows-from {args.rl_rows_from}: round {level + 1} of R1's third stage "
                             f"takes its rows from {teacher}, which neither exists nor is run by "
                             f"--seeds {' '.join(map(str, args.seeds))}: add {args.rl_rows_from} to --seeds")

    if not args.score_last_only and not args.skip_base:
        stage("eval-base", out / "eval-base.json",
              lambda: write_json(out / "eval-base.json", score(grpo_cfg, args.model.resolve(), args)))
    sft = out / "sft"

    def run_sft():
        config = derived_config(args.sft_config.resolve(), sft, base_model=str(args.model.resolve()),
                                output_dir=str(sft), dataset_prepared_path=str(out / "sft-prepared"),
                                save_strategy="no", **dataset_for(args.sft_config))
        train(config, sft, out / "sft.log")

    if args.no_sft:  # GRPO from the model as fetched: the base is the model it starts from
        start = args.model.resolve()
    else:
        stage("sft", saved_weights(sft), run_sft)
        scored(sft)
        start = sft
    for k in range(1, args.rejection_rounds + 1):
        rs = "rs" if k == 1 else f"rs{k}"
        model = out / f"sft{k + 1}"
        rejection_round(rs, start, k, [out / f"{rs}.jsonl"], start, model)
        start = model
    if not args.rl_rows:  # with --rl-rows, round 1's rows are there already: no teacher to train
        grpo_runs(start, grpo_prefix(0), seeds_at(0))
    rows: list[Path] = []
    for k in range(1, last_level + 1):
        prefix = third_stage(k)
        rows.append(out / f"{prefix}-rs.jsonl")
        every_round = args.rl_all_rows and k > 1
        model = out / f"{prefix}-sft{'-all' if every_round else ''}"
        teacher = None if k == 1 and args.rl_rows else out / f"{grpo_prefix(k - 1)}-s{args.rl_rows_from}"
        rejection_round(f"{prefix}-rs", teacher,
                        args.rejection_rounds + k, rows[:] if every_round else rows[-1:], start, model)
        grpo_runs(model, grpo_prefix(k), seeds_at(k))
    report(out, args)
    return 0


def exit_on_sigterm(signum, _frame):
    """SIGTERM as SystemExit, so `train` stops the running stage's training with this process."""
    sys.exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    sys.exit(main())
