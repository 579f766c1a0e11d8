"""Reads a rollout log once: per-step curves over every rollout, plus the rows to browse.

Curves always use the whole log. The browsable rows are the whole log up to
`max_rollouts`; above that a seeded uniform sample (reservoir sampling, so memory
stays bounded) that always keeps the first reflection moments, and the report says so.

Total over anything a log line may hold (the log is written by a run, but read back by
anyone, after crashes, edits and odd model text): each record is first normalised to
known types (`_normalise`): a field of the wrong type becomes "missing", a non-finite or
out-of-range number becomes None, text keeps only what UTF-8 can carry; a record without
an integer `step` (or one that cannot be read at all) is skipped and counted in `skipped`.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..rollouts.log import DOCTOR, EVAL, SAMPLING, STEP_TIME, VLLM_RESTART, record_kind
from ..rollouts.metrics import ReflectionMatcher
from ..rollouts.scan import Scanner, StepFinding, first_suspected
from ..rollouts.step_clock import ADVISORY
from ..rollouts.step_clock import METRICS as TIME_PARTS


FIRST_REFLECTIONS = 20


@dataclass
class StepStats:
    """Running sums for one (mode, step)."""

    count: int = 0
    reward_sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    reward_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    length_sum: float = 0.0
    length_count: int = 0
    reflections: int = 0

    def mean(self, name: str) -> float:
        n = self.reward_counts.get(name, 0)
        value = self.reward_sums[name] / n if n else math.nan
        return value if math.isfinite(value) else math.nan  # sums of huge values overflow


@dataclass
class ReportData:
    reward_names: list[str]
    steps: dict[str, dict[int, StepStats]]  # mode -> step -> stats
    rows: list[dict]  # browsable rollouts, in log order
    first_reflections: list[int]  # positions in `rows`
    total: int  # rollouts in the log
    sampled: bool
    findings: list[dict] = field(default_factory=list)  # the run doctor's records, in log order
    skipped: int = 0  # records that were not rollouts (no integer step, unreadable)
    evals: dict[int, dict] = field(default_factory=dict)  # step -> periodic eval metrics
    hacking: list[StepFinding] = field(default_factory=list)  # reinforced degenerate completions by step
    remote: dict[str, dict] = field(default_factory=dict)  # remote reward -> its call counts (remote_calls)
    restarts: list[dict] = field(default_factory=list)  # the vLLM server's restarts (vllm/restart.py)
    step_times: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> seconds per part
    sampling: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> dynamic sampling's figures


def step_seconds(raw: dict) -> dict[str, float] | None:
    """A `step_time` record's seconds (observe/step_time.py): each known part as a float >= 0."""
    seconds = raw.get("seconds")
    if not isinstance(seconds, dict):
        return None
    out = {part: _number(seconds.get(part)) for part in TIME_PARTS}
    return None if out["step"] is None or any(v is None or v < 0 for v in out.values()) else out


def remote_calls(raw: dict, into: dict[str, dict]) -> None:
    """Count the `remote/NAME` record a remote reward left on a rollout (remote/reward.py)."""
    for key, call in raw.items():
        if not (isinstance(key, str) and key.startswith("remote/") and isinstance(call, dict)):
            continue
        c = into.setdefault(clean_text(key[len("remote/"):][:200]), dict.fromkeys(
            ("samples", "cached", "failed", "unscored", "calls", "latency_ms"), 0.0))
        c["samples"] += 1
        c["cached"] += bool(call.get("cached"))
        c["failed"] += "failed" in call
        c["unscored"] += "unscored" in call
        c["calls"] += _number(call.get("calls")) or 0.0
        c["latency_ms"] += _number(call.get("latency_ms")) or 0.0


MAX_TEXT = 1_000_000  # characters kept of one prompt/completion/answer: a page must stay loadable


def _number(value) -> float | None:
    """A finite float, or None (wrong type, NaN, inf, an int beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _int(value) -> int | None:
    """An int a page can show exactly (|n| < 2**53), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**53:
        return None
    return value


def clean_text(text: object) -> str:
    """Text that survives UTF-8 (a lone surrogate becomes "?"), so page offsets stay exact."""
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _text(value, default: str | None = "") -> str | None:
    """A string field as clean text; a number is shown as its digits; any other type is missing."""
    if isinstance(value, str):  # cleaned (lone surrogates) by columns(), for the kept rows only
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT]
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, (int, float)):
        if isinstance(value, int) and abs(value) >= 10**100:
            return default
        return str(value)
    return default


@functools.lru_cache(maxsize=1024)  # a log repeats the same few names on every line
def _reward_name(name: str) -> str:
    return clean_text(name[:200])


def _normalise(record: object) -> dict | None:
    """The record with every field the report reads coerced to its type, or None to skip it."""
    if not isinstance(record, dict):
        return None
    step = _int(record.get("step"))
    if step is None:
        return None
    raw = record.get("rewards")
    rewards = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            if isinstance(name, str):
                rewards[_reward_name(name)] = _number(value)
    row = {
        "step": step,
        "mode": _text(record.get("mode"), None) or "train",
        "group": _int(record.get("group")),
        "prompt": _text(record.get("prompt")),
        "completion": _text(record.get("completion")),
        "answer": _text(record.get("answer"), None),
        "rewards": rewards,
        "reward": _number(record.get("reward")),
        "advantage": _number(record.get("advantage")),
        "length": _number(record.get("length")),
    }
    calls = _tool_calls(record.get("tool_calls"))
    if calls:
        row["tool_calls"] = calls
    if _int(record.get("round")) is not None:  # dynamic sampling: its round, its fate unless it trained
        row["round"] = record["round"]
        row["fate"] = clean_text(_text(record.get("sampling"), "") or "")[:20] or None
    if "reflection" in record:
        span = record["reflection"]
        ok = (isinstance(span, (list, tuple)) and len(span) == 2
              and all(_int(x) is not None for x in span)
              and 0 <= span[0] <= span[1] <= len(row["completion"]))
        row["reflection"] = tuple(span) if ok else None
    return row


MAX_TOOL_CALLS_SHOWN = 32  # of one rollout; the count says how many there were
MAX_TOOL_TEXT = 2000  # characters of one call's arguments or result


def _tool_calls(raw: object) -> list[list] | None:
    """A rollout's tool calls (observe/tool_turns.py) as [name, arguments, result, seconds] rows
    of text (seconds a number or None); None when it made none or the field is not a list."""
    if not isinstance(raw, list) or not raw:
        return None
    rows = []
    for call in raw[:MAX_TOOL_CALLS_SHOWN]:
        call = call if isinstance(call, dict) else {}
        arguments = call.get("arguments")
        if not isinstance(arguments, str):
            try:
                arguments = json.dumps(arguments, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError):
                arguments = repr(arguments)
        result = call.get("result")
        result = None if result is None else clean_text(_text(result))[:MAX_TOOL_TEXT]
        rows.append([clean_text(_text(call.get("name")))[:200], clean_text(arguments)[:MAX_TOOL_TEXT],
                     result, _number(call.get("seconds"))])
    if len(raw) > MAX_TOOL_CALLS_SHOWN:
        rows.append([f"... {len(raw) - MAX_TOOL_CALLS_SHOWN} more calls", "", None, None])
    return rows


def _reflection(record: dict, matcher: ReflectionMatcher | None):
    if matcher is None and "reflection" in record:
        return record["reflection"]
    return (matcher or _default_matcher()).first(record["completion"])


@functools.lru_cache(maxsize=1)
def _default_matcher() -> ReflectionMatcher:
    return ReflectionMatcher()


def collect(
    records: Iterable[dict],
    max_rollouts: int = 100_000,
    seed: int = 0,
    phrases: list[str] | None = None,
) -> ReportData:
    """One pass: aggregate curves, keep up to `max_rollouts` rows (sampled beyond)."""
    matcher = ReflectionMatcher(phrases) if phrases is not None else None
    rng = random.Random(seed)
    reward_names: dict[str, None] = {}
    steps: dict[str, dict[int, StepStats]] = defaultdict(lambda: defaultdict(StepStats))
    reservoir: list[tuple[int, dict]] = []
    firsts: list[tuple[int, dict]] = []
    total = skipped = 0
    findings: list[dict] = []
    restarts: list[dict] = []
    evals: dict[int, dict] = {}
    scanner = Scanner()
    remote: dict[str, dict] = {}
    step_times: dict[int, dict[str, float]] = {}
    sampling: dict[int, dict[str, float]] = {}

    def step_time(raw: dict) -> bool:
        seconds = step_seconds(raw)
        if _int(raw.get("step")) is None or seconds is None:
            return False
        step_times[raw["step"]] = seconds  # a resumed run's later record wins
        return True

    def sampled(raw: dict) -> bool:
        figures = {k: _number(raw.get(k)) for k in SAMPLING_FIGURES}
        if _int(raw.get("step")) is None or any(v is None or v < 0 for v in figures.values()):
            return False
        sampling[raw["step"]] = figures  # a resumed run's later record wins
        return True

    def evaluation(raw: dict) -> bool:
        if isinstance(raw.get("step"), int) and isinstance(raw.get("metrics"), dict):
            evals[raw["step"]] = raw["metrics"]  # a resumed run's later record wins
        return True

    # the records beside the rollouts, by kind (observe/rollout_log.RECORD_KINDS): False = unreadable
    kept = {STEP_TIME: step_time, DOCTOR: lambda raw: findings.append(raw) or True,
            VLLM_RESTART: lambda raw: restarts.append(raw) or True, EVAL: evaluation, SAMPLING: sampled}
    for raw in records:
        kind = record_kind(raw)
        if kind in kept:
            skipped += not kept[kind](raw)
            continue
        try:
            record = _normalise(raw)
        except (RecursionError, MemoryError, ValueError):  # nested too deep to walk, unreadable
            record = None
        if record is None:
            skipped += 1
            continue
        scanner.add(record)
        step, mode, rewards = record["step"], record["mode"], record["rewards"]
        remote_calls(raw, remote)
        stats = steps[mode][step]
        stats.count += 1
        for name, value in rewards.items():
            reward_names.setdefault(name, None)
            if value is not None:
                stats.reward_sums[name] += value
                stats.reward_counts[name] += 1
        reward = record["reward"]
        if reward is not None:
            stats.reward_sums["reward"] += reward
            stats.reward_counts["reward"] += 1
        length = record["length"]
        if length is not None:
            stats.length_sum += length
            stats.length_count += 1
        span = _reflection(record, matcher)
        if span:
            stats.reflections += 1
        record["reflection"] = span  # `record` is our own normalised copy
        row = (total, record)
        if span and len(firsts) < FIRST_REFLECTIONS:
            firsts.append(row)
        if len(reservoir) < max_rollouts:
            reservoir.append(row)
        else:
            j = rng.randrange(total + 1)
            if j < max_rollouts:
                reservoir[j] = row
        total += 1

    sampled = total > len(reservoir)
    kept = {index: row for index, row in reservoir}
    for index, row in firsts:
        kept.setdefault(index, row)
    order = sorted(kept)
    position = {index: i for i, index in enumerate(order)}
    return ReportData(
        reward_names=list(reward_names),
        steps={mode: dict(sorted(by_step.items())) for mode, by_step in steps.items()},
        rows=[kept[i] for i in order],
        first_reflections=[position[i] for i, _ in firsts],
        total=total,
        sampled=sampled,
        findings=findings,
        skipped=skipped,
        evals=dict(sorted(evals.items())),
        hacking=scanner.findings(),
        remote=remote,
        restarts=restarts,
        step_times=dict(sorted(step_times.items())),
        sampling=dict(sorted(sampling.items())),
    )


# a `sampling` record's figures (training/dynamic_sampling.py)
SAMPLING_FIGURES = ("rounds", "kept", "discarded", "zero_std_trained", "cap_hit", "carried")


def sampling_summary(data: ReportData) -> dict[str, float] | None:
    """Dynamic sampling over the run: steps, mean rounds per step, the share of generated groups
    set aside, the share of trained groups without spread, steps at the cap, groups carried;
    None when the log has no `sampling` records."""
    steps = list(data.sampling.values())
    if not steps:
        return None
    generated = sum(s["kept"] + s["discarded"] for s in steps)
    return {"steps": len(steps), "rounds": sum(s["rounds"] for s in steps) / len(steps),
            "set_aside": sum(s["discarded"] for s in steps) / generated if generated else 0.0,
            "zero_std_trained": sum(s["zero_std_trained"] for s in steps) / len(steps),
            "cap_hits": sum(s["cap_hit"] > 0 for s in steps), "carried": sum(s["carried"] for s in steps)}


def eval_curves(data: ReportData) -> dict[str, tuple[list[int], list[float]]]:
    """Per-evaluation series of the periodic held-out evaluation: accuracy, pass@k, format
    compliance and mean length (the per-reward means stay in the trackers)."""
    names: dict[str, None] = {}
    for metrics in data.evals.values():
        for name in metrics:
            if name.count("/") == 1:
                names.setdefault(name, None)
    out = {}
    for name in names:
        xs = [s for s, m in data.evals.items() if _number(m.get(name)) is not None]
        out[name] = (xs, [float(data.evals[s][name]) for s in xs])
    return out


def curves(data: ReportData, mode: str = "train") -> dict[str, tuple[list[int], list[float]]]:
    """Per-step series: each reward, the total, mean length and reflection rate."""
    by_step = data.steps.get(mode, {})
    xs = list(by_step)
    series = {name: [by_step[s].mean(name) for s in xs] for name in data.reward_names}
    series["reward"] = [by_step[s].mean("reward") for s in xs]
    series["completion length"] = [
        _finite_or_nan(by_step[s].length_sum / by_step[s].length_count) if by_step[s].length_count
        else math.nan for s in xs
    ]
    series["reflection rate"] = [by_step[s].reflections / by_step[s].count for s in xs]
    return {name: (xs, ys) for name, ys in series.items()}


# the curve each doctor signature is drawn on (the report has no TRL metrics, only rollouts)
FINDING_CURVES = {
    "truncation": "completion length",
    "length_runaway": "completion length",
    "zero_variance": "reward",
    "entropy_collapse": "reward",
    "format_without_correctness": "reward",
    "nan_gradients": "reward",
    "zero_gradients": "reward",
    "reward_hacking": "reward",
}


def findings_by_curve(data: ReportData) -> dict[str, list[tuple[int, str]]]:
    """Curve name -> [(step, signature)] of the doctor's findings to mark on it."""
    marks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    first = first_suspected(data.hacking)
    if first is not None and not any(f.get("signature") == "reward_hacking" for f in data.findings):
        marks["reward"].append((first.step, "reward_hacking"))  # the doctor's own record marks it otherwise
    for finding in data.findings:
        step = finding.get("step")
        if isinstance(step, int) and finding.get("signature") not in ADVISORY:  # not a curve's fault
            marks[FINDING_CURVES.get(str(finding.get("signature")), "reward")].append(
                (step, str(finding.get("signature"))))
    return dict(marks)


def step_time_shares(data: ReportData) -> tuple[dict[str, float], int]:
    """Mean share of each step-time part (`other` included) over the logged steps, the first left
    out when there are more (its warm-up, as the doctor does); and how many steps that is."""
    steps = [s for s in data.step_times.values() if s["step"] > 0][1:] or \
        [s for s in data.step_times.values() if s["step"] > 0]
    parts = [p for p in TIME_PARTS if p != "step"]
    if not steps:
        return {}, 0
    return {p: sum(s[p] / s["step"] for s in steps) / len(steps) for p in parts}, len(steps)


def _finite_or_nan(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def _utf16_len(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units): the page slices texts by these."""
    return len(text.encode("utf-16-le")) // 2


def _short(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def columns(data: ReportData) -> tuple[dict, list[str], list[str]]:
    """The rows for the page: (compact numeric columns, completions, distinct prompts).

    Texts travel separately (concatenated, compressed) so the page can show the
    list before it has decoded them; `clen`/`plen` are their UTF-16 lengths and
    `rs`/`re` the reflection span in UTF-16 offsets, as JavaScript indexes strings.
    """
    prompt_index: dict[str, int] = {}
    prompts: list[str] = []
    completions: list[str] = []
    modes: list[str] = []
    cols: dict[str, list] = {k: [] for k in (
        "step", "mode", "group", "prompt", "answer", "reward", "adv", "len", "rs", "re", "clen")}
    per_reward: dict[str, list] = {name: [] for name in data.reward_names}
    tools: list[list | None] = []
    fates: list[tuple[int | None, str | None]] = []
    for record in data.rows:
        prompt = clean_text(record["prompt"])
        if prompt not in prompt_index:
            prompt_index[prompt] = len(prompts)
            prompts.append(prompt)
        completion = clean_text(record["completion"])
        completions.append(completion)
        start, end = record.get("reflection") or (-1, -1)
        if start >= 0:
            start, end = _utf16_len(completion[:start]), _utf16_len(completion[:end])
        mode = clean_text(record["mode"])
        if mode not in modes:
            modes.append(mode)
        cols["step"].append(record["step"])
        cols["mode"].append(modes.index(mode))
        cols["group"].append(record["group"])
        cols["prompt"].append(prompt_index[prompt])
        cols["answer"].append(None if record["answer"] is None else clean_text(record["answer"]))
        cols["reward"].append(_short(record["reward"]))
        cols["adv"].append(_short(record["advantage"]))
        cols["len"].append(record["length"])
        cols["rs"].append(start)
        cols["re"].append(end)
        cols["clen"].append(_utf16_len(completion))
        for name in data.reward_names:
            per_reward[name].append(_short(record["rewards"].get(name)))
        tools.append(record.get("tool_calls"))
        fates.append((record.get("round"), record.get("fate")))
    if any(tools):  # a run with grpo_plugin.tools: the page shows each rollout's calls
        cols["tools"] = tools
    if any(r is not None for r, _ in fates):  # a run with grpo_plugin.dynamic_sampling: round and fate
        cols["round"], cols["fate"] = [r for r, _ in fates], [f for _, f in fates]
    meta = {
        "rewardNames": data.reward_names,
        "modes": modes,
        "plen": [_utf16_len(p) for p in prompts],
        "cols": cols,
        "rewards": per_reward,
        "firsts": data.first_reflections,
        "total": data.total,
        "shown": len(data.rows),
        "sampled": data.sampled,
        "skipped": data.skipped,
    }
    return meta, completions, prompts
