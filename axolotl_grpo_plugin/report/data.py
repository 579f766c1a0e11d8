"""Reads a rollout log once: per-step curves over every rollout, plus the rows to browse.

Curves always use the whole log. The browsable rows are the whole log up to
`max_rollouts`; above that a seeded uniform sample (reservoir sampling, so memory
stays bounded) that always keeps the first reflection moments, and the report says so.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..observe.metrics import ReflectionMatcher


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
        return self.reward_sums[name] / n if n else math.nan


@dataclass
class ReportData:
    reward_names: list[str]
    steps: dict[str, dict[int, StepStats]]  # mode -> step -> stats
    rows: list[dict]  # browsable rollouts, in log order
    first_reflections: list[int]  # positions in `rows`
    total: int  # rollouts in the log
    sampled: bool
    evals: dict[int, dict] = field(default_factory=dict)  # step -> periodic eval metrics


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _reflection(record: dict, matcher: ReflectionMatcher | None):
    if matcher is None and "reflection" in record:
        span = record["reflection"]
        if isinstance(span, (list, tuple)) and len(span) == 2 and all(isinstance(x, int) for x in span):
            return tuple(span)
        return None
    return (matcher or ReflectionMatcher()).first(record.get("completion", ""))


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
    total = 0
    evals: dict[int, dict] = {}
    for record in records:
        step = record.get("step")
        if not isinstance(step, int):
            continue
        if record.get("kind") == "eval":  # a periodic evaluation (evaluate/periodic.py), not a rollout
            if isinstance(record.get("metrics"), dict):
                evals[step] = record["metrics"]  # a resumed run's later record wins
            continue
        mode = str(record.get("mode") or "train")
        rewards = record.get("rewards") if isinstance(record.get("rewards"), dict) else {}
        stats = steps[mode][step]
        stats.count += 1
        for name, value in rewards.items():
            reward_names.setdefault(name, None)
            value = _number(value)
            if value is not None:
                stats.reward_sums[name] += value
                stats.reward_counts[name] += 1
        reward = _number(record.get("reward"))
        if reward is not None:
            stats.reward_sums["reward"] += reward
            stats.reward_counts["reward"] += 1
        length = _number(record.get("length"))
        if length is not None:
            stats.length_sum += length
            stats.length_count += 1
        span = _reflection(record, matcher)
        if span:
            stats.reflections += 1
        row = (total, {**record, "reflection": span, "rewards": rewards})
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
        evals=dict(sorted(evals.items())),
    )


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
        by_step[s].length_sum / by_step[s].length_count if by_step[s].length_count else math.nan
        for s in xs
    ]
    series["reflection rate"] = [by_step[s].reflections / by_step[s].count for s in xs]
    return {name: (xs, ys) for name, ys in series.items()}


def _utf16_len(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units): the page slices texts by these."""
    return len(text.encode("utf-16-le")) // 2


def _clean(text: object) -> str:
    """Text that survives UTF-8 (a lone surrogate becomes "?"), so page offsets stay exact."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


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
    for record in data.rows:
        prompt = _clean(record.get("prompt", ""))
        if prompt not in prompt_index:
            prompt_index[prompt] = len(prompts)
            prompts.append(prompt)
        completion = _clean(record.get("completion", ""))
        completions.append(completion)
        start, end = record.get("reflection") or (-1, -1)
        if start >= 0:
            start, end = _utf16_len(completion[:start]), _utf16_len(completion[:end])
        mode = str(record.get("mode") or "train")
        if mode not in modes:
            modes.append(mode)
        cols["step"].append(record.get("step"))
        cols["mode"].append(modes.index(mode))
        cols["group"].append(record.get("group"))
        cols["prompt"].append(prompt_index[prompt])
        answer = record.get("answer")
        cols["answer"].append(None if answer is None else str(answer))
        cols["reward"].append(_short(_number(record.get("reward"))))
        cols["adv"].append(_short(_number(record.get("advantage"))))
        cols["len"].append(_number(record.get("length")))
        cols["rs"].append(start)
        cols["re"].append(end)
        cols["clen"].append(_utf16_len(completion))
        for name in data.reward_names:
            per_reward[name].append(_short(_number(record["rewards"].get(name))))
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
    }
    return meta, completions, prompts
