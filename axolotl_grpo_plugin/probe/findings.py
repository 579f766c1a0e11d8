"""The probe's findings: the verdict, a terminal summary, JSON, a plot and a filtered dataset."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tools import advice
from . import arithmetic
from .core import MAX_TRUNCATION, MIN_SIGNAL_SHARE, TARGET_SIGNAL, TARGET_TRUNCATION, ProbeError, ProbeResult


PASS_BINS = ("0", "(0, .25)", "[.25, .5)", "[.5, .75)", "[.75, 1)", "1")


@dataclass
class Verdict:
    learns: bool
    because: list[str] = field(default_factory=list)
    change: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = "this run will likely learn" if self.learns else "this run will likely NOT learn"
        if self.because:
            head += ", because " + "; ".join(self.because)
        if self.change:
            head += ". Change: " + "; ".join(self.change)
        return head + "."


def pass_rate_bins(rates: list[float]) -> dict[str, int]:
    counts = dict.fromkeys(PASS_BINS, 0)
    for p in rates:
        if p == 0:
            counts["0"] += 1
        elif p == 1:
            counts["1"] += 1
        else:
            counts[PASS_BINS[1 + min(3, int(p * 4))]] += 1
    return counts


def generation_table(result: ProbeResult) -> list[dict[str, Any]]:
    """Per candidate G: expected share of groups with signal (total reward and pass/fail)."""
    rows = []
    candidates = sorted(set(result.generations) | {result.num_generations})
    for g in candidates:
        total = 1 - result.zero_variance_share(g, "total")
        correct = 1 - result.zero_variance_share(g, "correct")
        rows.append({"G": g, "signal_share": total, "correctness_signal_share": correct,
                     "extrapolated": g > result.samples_per_prompt})
    return rows


def recommended_generations(table: list[dict[str, Any]]) -> int | None:
    """The smallest G whose expected signal share reaches TARGET_SIGNAL; None when no probed G
    does (a G that leaves most groups without signal is no fix to recommend)."""
    for row in table:
        if row["signal_share"] >= TARGET_SIGNAL:
            return row["G"]
    return None


def recommended_length(result: ProbeResult) -> int | None:
    """The length that removes the truncation, when the probe saw one within its budget; None
    when even the budget truncates (the cap it was measured at cannot be the fix)."""
    length, rate_at = result.recommended_length()
    return length if rate_at <= TARGET_TRUNCATION else None


COLD_START = ("start from a model that already writes the format: a cold start, supervised "
              "fine-tuning on solutions written in it (R1's recipe; configs/smollm2-gsm8k-sft.yaml "
              "does it for GSM8K), then probe that model (--model DIR)")


def verdict(result: ProbeResult) -> Verdict:
    """Learns or not, the cause that explains it first, and only changes that can help."""
    v = Verdict(learns=True)
    n = len(result.samples)
    truncated = result.truncation_rate()
    signal = 1 - result.zero_variance_share(result.num_generations)
    stats_by_reward = result.reward_stats()
    format_missing = result.format_never_met()
    if format_missing:
        # the headline: nothing to learn from, whatever the length or the group size
        v.learns = False
        values = ", ".join(f"{name} {stats_by_reward[name]['mean']:g}"
                           for name in result.format_rewards())
        v.because.append(f"no probed completion has the format the rewards ask for (0 of {n} in "
                         f"strict format; {values} on every one)")
        if result.constant_rewards() == result.reward_names:
            v.because.append("every reward is constant, so every advantage is 0")
        v.change.append(COLD_START)
    if truncated > MAX_TRUNCATION and result.truncation_hides_signal():
        v.learns = False
        v.because.append(f"{truncated:.0%} of completions hit trl.max_completion_length "
                         f"{result.max_completion_length} before they end, and the cut-off "
                         "takes reward they earn uncut")
        length = recommended_length(result)
        if length is not None:
            v.change.append(f"set trl.max_completion_length: {length} (truncates "
                            f"{result.truncation_rate(length):.0%} of the probe's completions)")
        else:
            v.change.append(f"raise trl.max_completion_length above {result.budget} (still "
                            f"{result.truncation_rate(result.budget):.0%} truncated at "
                            f"{result.budget} tokens; probe again with --budget N), or lower "
                            "trl.temperature if the model rambles")
    elif truncated > MAX_TRUNCATION:
        v.notes.append(f"{truncated:.0%} of completions hit trl.max_completion_length "
                       f"{result.max_completion_length}, but they earn no more reward uncut "
                       f"(sampled up to {result.budget}): length is not what stops learning")
    if signal < MIN_SIGNAL_SHARE and not format_missing:
        v.learns = False
        rates = result.pass_rates()
        v.because.append(f"only {signal:.0%} of groups of {result.num_generations} would have "
                         "different rewards (the rest give every completion advantage 0)")
        table = generation_table(result)
        best = recommended_generations(table)
        if result.format_rewards() and not result.strict_format_seen():
            # a stray tag here and there moves a format reward, but the answer the correctness
            # reward reads lives inside the format: easier prompts would not be solved either
            v.because.append(f"none of the {n} probed completions is in the strict format the rewards ask for")
            v.change.append(COLD_START)
        elif rates and all(p == 0 for p in rates):
            v.change.append("use easier prompts or a stronger base model (no probed prompt was "
                            "ever solved)")
        elif rates and all(p == 1 for p in rates):
            v.change.append("use harder prompts (every probed prompt was always solved)")
        else:
            v.change.append("keep the prompts the model sometimes solves (--write-filtered PATH)")
        if best is not None and best > result.num_generations:
            v.change.append(f"set trl.num_generations: {best}")
    if result.tools is not None:
        v.notes += tool_notes(result.tools, n)
    for name in result.constant_rewards():
        value = stats_by_reward[name]["mean"]
        v.notes.append(f"reward {name} is constant ({value:g}) on every probed completion: it "
                       "adds nothing to the advantages; check that it can vary (format, columns)")
    return v


def tool_notes(tools: dict[str, float], completions: int) -> list[str]:
    """With `grpo_plugin.tools`: a model that never calls them, or whose calls mostly fail."""
    if tools["answers_with_tool_calls"] == 0:
        return [f"{advice.NEVER_CALLED} (0 of {completions} completions). Fix: {advice.NEVER_CALLED_FIX}"]
    if tools["tool_error_rate"] >= advice.MOSTLY_FAIL_SHARE:
        return [f"{advice.MOSTLY_FAIL} ({tools['tool_error_rate']:.0%} of the calls). Fix: {advice.MOSTLY_FAIL_FIX}"]
    return []


def to_json(result: ProbeResult) -> dict[str, Any]:
    length = recommended_length(result)
    table = generation_table(result)
    v = verdict(result)
    steps = math.ceil(result.dataset_rows / result.prompts_per_step)
    zero = result.zero_variance_share(result.num_generations)
    return {
        "config": result.config, "model": result.model, "backend": result.backend,
        "prompts": result.prompts, "samples_per_prompt": result.samples_per_prompt,
        "max_completion_length": result.max_completion_length, "budget": result.budget,
        "temperature": result.temperature,
        "truncation_rate": result.truncation_rate(),
        "completion_length": result.length_percentiles(),
        "recommended_max_completion_length": length,
        "truncation_rate_at_recommended": None if length is None else result.truncation_rate(length),
        "truncation_rate_at_budget": result.truncation_rate(result.budget),
        "truncation_hides_signal": result.truncation_hides_signal(),
        "prompt_tokens_max_probed": result.prompt_tokens_max,
        "max_model_len": result.max_model_len,
        "recommended_max_model_len": result.recommended_max_model_len,
        "pass_rate_histogram": pass_rate_bins(result.pass_rates()),
        "correct_reward": result.correct_reward,
        "generations": table,
        "recommended_num_generations": recommended_generations(table),
        "format_compliance": result.format_compliance(),
        "format_never_met": result.format_never_met(),
        "tools": result.tools,
        "rewards": result.reward_stats(),
        "constant_rewards": result.constant_rewards(),
        "num_generations": result.num_generations,
        "prompts_per_step": result.prompts_per_step,
        "steps_per_epoch": steps,
        "signal_steps_per_epoch": arithmetic.signal_steps(zero, result.prompts_per_step, steps),
        "verdict": {"learns": v.learns, "because": v.because, "change": v.change,
                    "notes": v.notes, "line": v.line()},
        "wall_s": result.wall_s,
    }


def format_summary(result: ProbeResult) -> str:
    data = to_json(result)
    pct = data["completion_length"]
    lines = [
        f"probe: {result.model} on {result.prompts} training prompts x {result.samples_per_prompt} "
        f"completions ({result.backend}, temperature {result.temperature:g}, "
        f"{result.wall_s:.1f}s)",
        "",
        "length",
        f"  truncated at max_completion_length {result.max_completion_length}: "
        f"{data['truncation_rate']:.1%}",
        f"  completion tokens (sampled up to {result.budget}): "
        + ", ".join(f"{k} {v:g}" for k, v in pct.items()),
        (f"  recommended trl.max_completion_length: {data['recommended_max_completion_length']} "
         f"(truncates {data['truncation_rate_at_recommended']:.1%})"
         if data["recommended_max_completion_length"] is not None else
         f"  no length within the {result.budget}-token budget removes the truncation "
         f"({data['truncation_rate_at_budget']:.1%} still cut there)"),
    ]
    if data["recommended_max_model_len"]:
        lines.append(f"  recommended vllm.max_model_len: {data['recommended_max_model_len']} "
                     "(longest training prompt + that length; `axolotl-grpo stats CONFIG`)")
    lines += ["", f"pass rate per prompt ({result.correct_reward} > 0)"]
    hist = data["pass_rate_histogram"]
    top = max(hist.values()) or 1
    for label, count in hist.items():
        lines.append(f"  {label:>10} {'#' * round(20 * count / top):<20} {count}")
    lines += ["", "groups with signal (rewards not all equal), expected share"]
    for row in data["generations"]:
        mark = "  (extrapolated)" if row["extrapolated"] else ""
        here = "  <- config" if row["G"] == result.num_generations else ""
        lines.append(f"  G={row['G']:<4} total reward {row['signal_share']:6.1%}   "
                     f"pass/fail {row['correctness_signal_share']:6.1%}{mark}{here}")
    best = data["recommended_num_generations"]
    lines.append(f"  recommended trl.num_generations: {best}" if best is not None else
                 f"  no probed group size reaches {TARGET_SIGNAL:.0%} of groups with signal")
    lines += ["", f"format compliance (strict): {data['format_compliance']:.1%}", "rewards (mean, variance)"]
    for name, st in data["rewards"].items():
        flag = "   <- constant: no signal" if name in data["constant_rewards"] else ""
        lines.append(f"  {name:<32} {st['mean']:8.3f} {st['variance']:8.4f}{flag}")
    if result.tools is not None:
        t = result.tools
        lines.append(f"tools: {t['tool_calls_per_answer']:.2f} calls per completion, "
                     f"{t['answers_with_tool_calls']:.0%} of completions call one, "
                     f"{t['tool_error_rate']:.0%} of the calls fail")
    lines += ["", f"steps per epoch: {data['steps_per_epoch']} ({result.dataset_rows} rows, "
              f"{result.prompts_per_step} prompts per step); expected with signal: "
              f"{data['signal_steps_per_epoch']:.1f}", ""]
    v = data["verdict"]
    lines.append("verdict: " + v["line"])
    lines += [f"note: {n}" for n in v["notes"]]
    return "\n".join(lines)


def check_band(band: tuple[float, float]) -> tuple[float, float]:
    """--band LO HI, checked before any prompt is sampled."""
    lo, hi = band
    if not 0 <= lo < hi <= 1:
        raise ProbeError(f"--band {lo:g} {hi:g}: need 0 <= LO < HI <= 1. Fix: give the lower pass rate "
                         "first, e.g. --band 0.2 0.8 (the default, 0 1, keeps the prompts neither always "
                         "nor never solved)")
    return lo, hi


def write_filtered(result: ProbeResult, path: str | Path, band: tuple[float, float] = (0.0, 1.0)) -> int:
    """The probed prompts whose pass rate is strictly inside `band`, as raw rows of the probed
    config's dataset (so the same `type:` transform reads them); returns how many were written.
    None selected: nothing is written (a file already at `path` is kept)."""
    from ..sampling.prompts import dataset_entries, load_rows

    lo, hi = check_band(band)
    raw: list[dict] = []
    for spec in dataset_entries(result.run, "train"):
        raw.extend(load_rows(spec, "train").to_list())
    if len(raw) != result.rendered:
        raise ProbeError(f"--write-filtered: the dataset's transform turned {len(raw)} rows into "
                         f"{result.rendered} prompts, so probed prompts cannot be traced back to "
                         "raw rows; filter the transformed rows yourself from --json")
    rates = result.pass_rates()
    keep = [i for i, p in zip(result.problem_indices, rates) if lo < p < hi]
    if not keep:  # an empty dataset trains nothing: write nothing, and keep a file already there
        return 0
    from ..system.safe_files import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(json.dumps(raw[i], ensure_ascii=False, default=str) + "\n" for i in keep))
    return len(keep)


def check_plot(path: str | Path) -> None:
    """--plot PATH, checked (its folder made) before any prompt is sampled, not after."""
    from ..system.safe_files import unwritable

    why = "is a symlink" if Path(path).is_symlink() else unwritable(path)
    if why:
        raise ProbeError(f"--plot = {str(path)!r}: {why}. Fix: name a file (not a folder or a symlink) in a "
                         "folder you can write, e.g. --plot probe.png")


def plot(result: ProbeResult, path: str | Path) -> None:
    """Pass-rate histogram and completion-length histogram with the cut-off marked."""
    import matplotlib

    from ..system.safe_files import replacing

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    left, right = fig.subplots(1, 2)
    hist = pass_rate_bins(result.pass_rates())
    left.bar(range(len(hist)), list(hist.values()), color="#1f5f99")
    left.set_xticks(range(len(hist)), list(hist), fontsize=7)
    left.set_title(f"pass rate per prompt ({result.samples_per_prompt} samples each)", fontsize=9)
    left.set_ylabel("prompts", fontsize=8)
    lengths = [s.tokens for s in result.samples]
    right.hist(lengths, bins=min(40, max(5, result.budget // 8)), range=(0, result.budget),
               color="#9ab7d3")
    right.axvline(result.max_completion_length, color="#c0392b", linewidth=1.5,
                  label=f"max_completion_length {result.max_completion_length}")
    length = recommended_length(result)
    if length is not None and length != result.max_completion_length:
        right.axvline(length, color="#27ae60", linestyle="--", linewidth=1.2,
                      label=f"recommended {length}")
    right.set_title(f"completion tokens (truncated {result.truncation_rate():.0%})", fontsize=9)
    right.legend(fontsize=7, frameon=False)
    for ax in (left, right):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with replacing(Path(path), "wb") as handle:  # whole or not at all, never through a symlink
        fig.savefig(handle, format="png")
