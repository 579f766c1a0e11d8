"""The reward audit: score a correct reference and every family of degenerate and terse
completions (families.py) on the config's own training prompts, with the config's rewards as
training resolves and contains them, and judge each reward and the weighted total.

A reward is hackable when (a) some family, degenerate or terse, scores more than the correct
completion on some prompt (a length, repetition or tag bonus), or (b) it is answer-sensitive
(it pays the format-with-a-wrong-integer completion less than the correct one) and yet some
degenerate family scores as much as the correct completion on a prompt where it is (it tries
to check the answer and can be fooled). An answer-blind format reward pays a wrong answer what
it pays a right one: reported as such, not hackable.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..config.run import read_run
from ..errors import PluginError
from ..names import load_config
from ..registry import REWARDS, original_path
from ..sampling import scoring
from ..sampling.prompts import dataset_entries, head_rows, transform_rows
from .families import DEGENERATE, FAMILIES, TERSE, WRONG_ANSWERS, Case, build_case


DEFAULT_PROMPTS = 32
DETERMINISM_PROMPTS = 4   # prompts whose completions are scored twice
SLOW_MS = 100.0           # a reward call slower than this (median) is reported
EPS = 1e-9
EXAMPLE_CHARS = 400
FIX_BONUS = ("cap it: pay at most what the correct completion gets (no bonus that grows with length, "
             "repetitions or tag counts), or pay it only together with a correct answer")
FIX_FOOLED = ("require one answer block, score only the answer span (the last `<answer>` block), "
              "parse one value from it and compare that with the gold")


class AuditError(PluginError):
    """The audit's inputs are wrong (config, dataset, flags), said in one line with the fix."""


@dataclass
class Evidence:
    """Where a rule fired: the family, the prompt, both scores and the completion."""

    family: str
    prompt: int
    score: float
    correct: float
    completion: str


@dataclass
class Verdict:
    """One reward's (or the weighted total's) result."""

    name: str
    weight: float | None
    correct: float | None
    max_degenerate: float | None
    family: str | None
    example: str | None
    answer_sensitive: bool
    hackable: bool = False
    why: str = ""
    fix: str | None = None
    terse: dict[str, float | None] = field(default_factory=dict)
    families: dict[str, float | None] = field(default_factory=dict)
    evidence: Evidence | None = None
    issues: list[str] = field(default_factory=list)
    ms_per_call: float | None = None
    unscored: bool = False

    @property
    def ratio(self) -> float | None:
        if self.correct is None or self.max_degenerate is None or self.correct <= 0:
            return None
        return self.max_degenerate / self.correct

    @property
    def pays_for_reasoning(self) -> float | None:
        """Correct minus the answer block alone: what the reasoning earns."""
        terse = self.terse.get("answer, no reasoning")
        return None if terse is None or self.correct is None else self.correct - terse

    @property
    def pays_for_length(self) -> float | None:
        """The best padded family minus the correct one: what length earns (0: nothing)."""
        padded = [v for k, v in self.terse.items() if k.startswith("padded") and v is not None]
        return None if not padded or self.correct is None else max(padded) - self.correct

    def as_json(self) -> dict[str, Any]:
        return {
            "max_degenerate": _round(self.max_degenerate), "correct": _round(self.correct),
            "ratio": _round(self.ratio), "family": self.family, "example": self.example,
            "answer_sensitive": self.answer_sensitive, "hackable": self.hackable, "why": self.why,
            "fix": self.fix, "weight": self.weight,
            "terse": {k: _round(v) for k, v in self.terse.items()},
            "pays_for_reasoning": _round(self.pays_for_reasoning),
            "pays_for_length": _round(self.pays_for_length),
            "families": {k: _round(v) for k, v in self.families.items()},
            "evidence": None if self.evidence is None else {
                "family": self.evidence.family, "prompt": self.evidence.prompt,
                "score": _round(self.evidence.score), "correct": _round(self.evidence.correct),
                "completion": _short(self.evidence.completion)},
            "issues": self.issues, "ms_per_call": _round(self.ms_per_call),
        }


@dataclass
class AuditResult:
    config: str
    prompts: int
    tasks: dict[str, int]
    rewards: list[Verdict]
    total: Verdict
    wall_s: float = 0.0

    @property
    def hackable(self) -> list[str]:
        return [v.name for v in self.rewards if v.hackable]

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config, "prompts": self.prompts, "tasks": self.tasks,
            "families": {f.name: f.kind for f in FAMILIES},
            "rewards": {v.name: v.as_json() for v in self.rewards},
            "total": self.total.as_json(),
            "hackable": self.hackable,
            "seconds": round(self.wall_s, 3),  # config to verdict, importing `datasets` included
        }


def listed_name(path: Any) -> str:
    """A resolved `trl.reward_funcs` entry -> the name the config lists it under."""
    short = REWARDS.strip_import_path(str(path))
    return short if short in REWARDS else original_path(str(path))


def config_rewards(run: Any) -> list[scoring.Reward]:
    """The config's rewards as training resolves them (registered, entry point or import path,
    each behind the containment layer), with their weights, named as the config lists them."""
    try:
        rewards = scoring.load_rewards(run)
    except PluginError as exc:
        raise AuditError(exc.render()) from None
    names = [listed_name(p) for p in run.trl.reward_funcs]
    seen: dict[str, int] = {}
    out = []
    for reward, name in zip(rewards, names):
        seen[name] = seen.get(name, 0) + 1
        out.append(replace(reward, name=name if seen[name] == 1 else f"{name}#{seen[name]}"))
    return out


def training_cases(cfg: dict[str, Any], run: Any, count: int, dataset: str | None = None) -> list[Case]:
    """`count` training prompts with a gold answer, taken in turn from each dataset entry."""
    limit = run.completion_length
    per_entry: list[list[Case]] = []
    entries = dataset_entries(run, "train", dataset, "--dataset")
    quota = -(-count // len(entries))
    for i, spec in enumerate(entries):
        rows = head_rows(spec, "train", 2 * quota + 8)
        cases = [case for j, row in enumerate(transform_rows(cfg, spec, i, rows))
                 if (case := build_case(j, row, limit)) is not None]
        per_entry.append(cases)
    picked = [case for group in _round_robin(per_entry) for case in group][:count]
    if not picked:
        raise AuditError("datasets: no training row has a gold answer the audit can read (an `answer` "
                         "column, or countdown's `numbers` and `target`). Fix: point `datasets:` (or "
                         "--dataset) at rows of a GSM8K, countdown or MATH task")
    for index, case in enumerate(picked):
        case.index = index
    return picked


def _round_robin(groups: list[list[Case]]):
    for items in zip(*[g + [None] * (max(map(len, groups)) - len(g)) for g in groups]):
        yield [c for c in items if c is not None]


@dataclass
class Scores:
    """One reward's values: the reference and each family (lowest variant) per prompt."""

    reference: list[float]
    families: dict[str, list[float]]
    best_variant: dict[str, list[str]]  # family -> its highest-scoring variant per prompt
    calls_ms: list[float] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)


def audit(config: Any, *, prompts: int = DEFAULT_PROMPTS, dataset: str | None = None,
          progress: Any = None) -> AuditResult:
    """The full audit of a config (yaml path or mapping) on `prompts` training prompts."""
    started = time.perf_counter()
    if prompts < 1:
        raise AuditError(f"--prompts {prompts}: must be at least 1")
    cfg = load_config(config)
    run = read_run(cfg)
    rewards = config_rewards(run)
    cases = training_cases(cfg, run, prompts, dataset)
    return judge_all(config, rewards, cases, progress, started)


def judge_all(config: Any, rewards: list[scoring.Reward], cases: list[Case], progress: Any = None,
              started: float | None = None) -> AuditResult:
    started = time.perf_counter() if started is None else started
    per_reward: dict[str, Scores] = {}
    totals_by_case = []
    for case in cases:
        texts, where = _completions(case)
        call = scoring.call_arguments([case.prompt] * len(texts), texts, [_ids(t) for t in texts],
                                      [_columns(case.row)] * len(texts))
        values = {}
        for reward in rewards:
            values[reward.name] = _score(reward, call, per_reward, case, len(cases))
        total = scoring.weighted_total(values, rewards)
        totals_by_case.append(total)
        for reward in rewards:
            _collect(per_reward[reward.name], values[reward.name], case, texts, where)
        if progress is not None:
            progress.update(1)
    total_scores = Scores([], {}, {})
    for case, total in zip(cases, totals_by_case):
        texts, where = _completions(case)
        _collect(total_scores, total, case, texts, where)
    verdicts = [judge(r.name, per_reward[r.name], r.weight) for r in rewards]
    total_verdict = judge("total", total_scores, None)
    tasks: dict[str, int] = {}
    for case in cases:
        tasks[case.task] = tasks.get(case.task, 0) + 1
    return AuditResult(str(config) if not isinstance(config, dict) else "(mapping)", len(cases), tasks,
                       verdicts, total_verdict, time.perf_counter() - started)


def _completions(case: Case) -> tuple[list[str], list[tuple[str, int]]]:
    texts = [case.reference]
    where = [("", 0)]
    for name, variants in case.variants.items():
        for k, text in enumerate(variants):
            texts.append(text)
            where.append((name, k))
    return texts, where


def _ids(text: str) -> list[int]:
    """Placeholder token ids of about the text's token count (no tokenizer is loaded)."""
    return [0] * max(1, len(text) // 4) if text else []


def _columns(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "prompt"}


def _score(reward: scoring.Reward, call: dict, per_reward: dict[str, Scores], case: Case, cases: int) -> list[float]:
    """One reward on one prompt's completions, timed; errors counted by the containment layer
    and anything raised past it are noted; the first prompts are scored twice."""
    scores = per_reward.setdefault(reward.name, Scores([], {}, {}))
    errors_before = getattr(reward.func, "errors", 0)
    start = time.perf_counter()
    try:
        values = scoring.call_reward(reward, call)
    except Exception as exc:  # noqa: BLE001 - an uncontained reward, or a broken contract
        _note(scores, f"raises past the containment layer: {type(exc).__name__}: {str(exc)[:200]} "
              "(training would stop at the first batch)")
        return [math.nan] * len(call["completions"])
    scores.calls_ms.append((time.perf_counter() - start) * 1000)
    if getattr(reward.func, "errors", 0) > errors_before:
        _note(scores, _contained_failure(reward, call))
    bad = [v for v in values if math.isinf(v)]
    if bad:
        _note(scores, f"returns non-finite values ({bad[0]})")
    if case.index < min(DETERMINISM_PROMPTS, cases):
        try:
            again = scoring.call_reward(reward, call)
        except Exception:  # noqa: BLE001 - noted on the first call
            again = values
        if any(not _same(a, b) for a, b in zip(values, again)):
            _note(scores, "non-deterministic: the same completions scored twice get different values")
    return values


def _contained_failure(reward: scoring.Reward, call: dict) -> str:
    """Why the containment layer counted errors: the raw function raised, or returned a value
    that is not a finite number (both score 0.0 in training)."""
    raw = getattr(reward.func, "__wrapped__", None)
    if raw is not None:
        try:
            out = raw(**call)
        except Exception as exc:  # noqa: BLE001
            return f"raises ({type(exc).__name__}: {str(exc)[:120]}); the containment layer scores it 0.0"
        bad = [v for v in (out if isinstance(out, list) else []) if not _finite_or_none(v)]
        if bad:
            return f"returns non-finite values ({bad[0]!r}); the containment layer scores them 0.0"
    return "fails on some completions (timeouts or errors); the containment layer scores them 0.0"


def _finite_or_none(value: Any) -> bool:
    if value is None:
        return True
    try:
        number = float(value)
    except Exception:  # noqa: BLE001
        return False
    return math.isfinite(number) or math.isnan(number)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _note(scores: Scores, issue: str) -> None:
    kind = issue.split(" ", 1)[0]
    if not any(i.split(" ", 1)[0] == kind for i in scores.issues):
        scores.issues.append(issue)


def _collect(scores: Scores, values: list[float], case: Case, texts: list[str], where: list[tuple[str, int]]) -> None:
    scores.reference.append(values[0])
    lowest: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for value, text, (name, _) in zip(values[1:], texts[1:], where[1:]):
        if name not in lowest or _less(value, lowest[name]):
            lowest[name] = value
        if name not in best or _less(best[name][0], value):
            best[name] = (value, text)
    for family in FAMILIES:
        scores.families.setdefault(family.name, []).append(lowest.get(family.name, math.nan))
        scores.best_variant.setdefault(family.name, []).append(best.get(family.name, (0.0, ""))[1])


def _less(a: float, b: float) -> bool:
    """a < b, NaN ("not applicable") above every number so a family's lowest is a real score."""
    if math.isnan(a):
        return False
    return math.isnan(b) or a < b


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else None


def judge(name: str, scores: Scores, weight: float | None) -> Verdict:
    """Rules (a) and (b) over every prompt; means for the summary."""
    ref = scores.reference
    scored = [i for i, v in enumerate(ref) if not math.isnan(v)]
    means = {f.name: _mean([scores.families[f.name][i] for i in scored]) for f in FAMILIES}
    degenerate = [f.name for f in FAMILIES if f.kind == DEGENERATE and means[f.name] is not None]
    top = max(degenerate, key=lambda f: means[f], default=None)  # FAMILIES order breaks ties
    verdict = Verdict(
        name=name, weight=weight, correct=_mean([ref[i] for i in scored]),
        max_degenerate=means[top] if top else None, family=top,
        example=_example(scores, top, scored) if top else None, answer_sensitive=False,
        terse={f.name: means[f.name] for f in FAMILIES if f.kind == TERSE},
        families=means, issues=list(scores.issues),
        ms_per_call=statistics.median(scores.calls_ms) if scores.calls_ms else None,
    )
    if scores.calls_ms and verdict.ms_per_call > SLOW_MS:
        verdict.issues.append(f"slow: {verdict.ms_per_call:.0f} ms per call (median) on one prompt's "
                              f"completions, over the {SLOW_MS:g} ms budget")
    if not scored:
        verdict.unscored = True
        verdict.why = ("not judged: it returned None (not applicable) for every correct reference, so the "
                       "audit has nothing to compare with")
        return verdict
    wrong = [min((scores.families[f][i] for f in WRONG_ANSWERS), key=lambda v: (math.isnan(v), v)) for i in range(len(ref))]
    sensitive = [i for i in scored if not math.isnan(wrong[i]) and wrong[i] < ref[i] - EPS]
    verdict.answer_sensitive = bool(sensitive)
    # terse families first: on a tie, the gold padded or repeated shows a bonus most plainly
    over = _first(scores, [f.name for f in FAMILIES if f.kind == TERSE] +
                  [f.name for f in FAMILIES if f.kind == DEGENERATE], scored, lambda v, r: v > r + EPS)
    if over is not None:
        verdict.hackable, verdict.evidence, verdict.fix = True, over, FIX_BONUS
        verdict.why = (f"hackable: `{over.family}` scores {over.score:.4g}, more than the correct "
                       f"completion's {over.correct:.4g} (prompt {over.prompt}): a length, repetition or tag "
                       "bonus")
        return verdict
    fooled = _first(scores, [f.name for f in FAMILIES if f.kind == DEGENERATE], sensitive,
                    lambda v, r: v >= r - EPS) if sensitive else None
    if fooled is not None:
        verdict.hackable, verdict.evidence, verdict.fix = True, fooled, FIX_FOOLED
        verdict.why = (f"hackable: it checks the answer (a wrong integer scores less), yet `{fooled.family}` "
                       f"scores {fooled.score:.4g}, as much as the correct completion (prompt {fooled.prompt})")
        return verdict
    if not verdict.answer_sensitive:
        verdict.why = ("answer-blind format reward: it pays a wrong answer what it pays a right one "
                       "(not hackable: it never pays more than the correct completion)")
    else:
        share = verdict.ratio
        verdict.why = ("checks the answer; no degenerate completion reaches the correct one's score"
                       + (f" (best: `{top}`, {share:.0%})" if share is not None and top else ""))
    return verdict


def _first(scores: Scores, families: list[str], prompts: list[int], rule) -> Evidence | None:
    """The strongest family score that satisfies `rule(value, reference)`: the largest margin over
    the correct completion, then the family's mean, then family order."""
    best: tuple[float, float] | None = None
    found = None
    for name in families:
        values = scores.families[name]
        hits = [i for i in prompts if not math.isnan(values[i]) and not math.isnan(scores.reference[i])
                and rule(values[i], scores.reference[i])]
        if not hits:
            continue
        i = max(hits, key=lambda k: values[k] - scores.reference[k])
        key = (round(values[i] - scores.reference[i], 9), len(hits))
        if best is None or key > best:
            best, found = key, Evidence(name, i, values[i], scores.reference[i], scores.best_variant[name][i])
    return found


def _example(scores: Scores, family: str, prompts: list[int]) -> str:
    """The family's completion on the prompt where it came closest to the correct score."""
    values = scores.families[family]
    best = max(prompts, key=lambda i: -math.inf if math.isnan(values[i]) else values[i] - scores.reference[i])
    return _short(scores.best_variant[family][best])


def _short(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + f"... ({len(text)} characters)"


def _round(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 6)
