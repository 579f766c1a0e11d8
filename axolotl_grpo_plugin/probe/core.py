"""`probe()`: sample the run's own base model on training prompts and judge whether GRPO can learn.

Everything the trainer would use comes from the sampling path evaluate shares
(`sampling.sampler.Sampler`): the config read once, prompts rendered as training renders
them, the tokenizer and the generator (vLLM or transformers), the run's tools, the rewards
called as TRL calls them. The probe adds its group sizes, its token budget and the verdict.

One sampling pass serves both questions. Completions are sampled with a token budget
above `trl.max_completion_length` (`budget`), so lengths past the cut-off are seen and
a length that removes the truncation can be recommended; each completion is then cut
at the configured length and scored as the trainer would score it, so pass rates,
rewards and zero-variance shares describe the run as configured.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.run import Run
from ..sampling.generation import SamplingSettings
from ..sampling.prompts import EvalError, dataset_entries, load_rows
from ..sampling.sampler import Sampled, Sampler, SampleRequest
from ..sampling.tool_loop import tool_stats
from ..sources.pass_rates import append as append_pass_rates
from ..sources.pass_rates import prompt_key
from ..sources.pass_rates import read as read_pass_rates
from ..sources.pass_rates import record as pass_rate_record
from . import arithmetic


class ProbeError(EvalError):
    """A problem with the probe's inputs or flags, in one line with the fix."""


# Verdict thresholds (docs/observe.md, "Pre-flight probe").
MAX_TRUNCATION = 0.10      # above this, truncation dominates the rewards
MIN_SIGNAL_SHARE = 0.25    # below this share of groups with reward variance, most steps are wasted
TARGET_TRUNCATION = 0.02   # what the recommended length aims for
TARGET_SIGNAL = 0.5        # what the recommended num_generations aims for
FORMAT_HINTS = ("format", "xml")  # reward names that score the output format
TOKENIZER_FIX = ("set `base_model:` (or `tokenizer_config:`) in the config to a model folder with a tokenizer "
                 "(tokenizer.json or vocab+merges), or pass --model DIR")


@dataclass
class Sample:
    """One completion, cut at the configured length as the trainer would see it."""

    prompt: int
    tokens: int          # its length within the sampling budget
    ended: bool          # reached EOS within the budget
    rewards: dict[str, float]
    reward: float
    correct: bool
    strict_format: bool
    # scored uncut, at the sampling budget: what a longer max_completion_length would give
    # (the same values when the completion fits the configured length)
    reward_uncut: float | None = None
    strict_format_uncut: bool | None = None

    @property
    def truncated(self) -> bool:
        return self.reward_uncut is not None


@dataclass
class ProbeResult:
    config: str
    model: str
    backend: str
    prompts: int
    samples_per_prompt: int
    dataset_rows: int
    max_completion_length: int
    budget: int
    temperature: float
    num_generations: int
    prompts_per_step: int
    correct_reward: str
    reward_names: list[str]
    samples: list[Sample] = field(repr=False)
    problem_indices: list[int] = field(repr=False)
    prompt_tokens_max: int = 0
    max_model_len: int | None = None
    recommended_max_model_len: int | None = None
    generations: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    rendered: int = 0  # training prompts after the transform (== dataset_rows when it maps 1:1)
    tools: dict[str, float] | None = None  # with grpo_plugin.tools: sampling.tool_loop.tool_stats
    resumed: int = 0  # chosen prompts skipped: their pass rate was already in the pass-rates file
    run: Run = field(kw_only=True, repr=False)  # the config probed (write_filtered reads its datasets)

    # --- per prompt ---------------------------------------------------------------
    def by_prompt(self) -> list[list[Sample]]:
        groups: dict[int, list[Sample]] = {}
        for s in self.samples:
            groups.setdefault(s.prompt, []).append(s)
        return list(groups.values())

    def pass_rates(self) -> list[float]:
        return [sum(s.correct for s in g) / len(g) for g in self.by_prompt()]

    def zero_variance_share(self, g: int, reward: str = "total") -> float:
        """Mean over prompts of the chance that a group of G gets equal rewards ("total": the
        weighted sum TRL's advantages use; "correct": the pass/fail verdict)."""
        chances = []
        for group in self.by_prompt():
            values = ([s.reward for s in group] if reward == "total"
                      else [float(s.correct) for s in group])
            chances.append(arithmetic.zero_variance_chance(values, g))
        return arithmetic.mean(chances)

    # --- lengths ------------------------------------------------------------------
    def truncation_rate(self, limit: int | None = None) -> float:
        limit = limit or self.max_completion_length
        return arithmetic.truncation_rate([s.tokens for s in self.samples], [s.ended for s in self.samples],
                                     limit)

    def length_percentiles(self) -> dict[str, float]:
        lengths = [s.tokens for s in self.samples]
        return {f"p{q}": arithmetic.percentile(lengths, q) for q in (50, 90, 95, 99, 100)}

    def recommended_length(self) -> tuple[int, float]:
        return arithmetic.recommend_length([s.tokens for s in self.samples], [s.ended for s in self.samples],
                                      self.budget, TARGET_TRUNCATION)

    # --- rewards ------------------------------------------------------------------
    def reward_stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for name in self.reward_names:
            values = [s.rewards[name] for s in self.samples]
            out[name] = {"mean": arithmetic.mean(values), "variance": arithmetic.variance(values)}
        return out

    def constant_rewards(self) -> list[str]:
        return [name for name, st in self.reward_stats().items() if st["variance"] == 0]

    def format_compliance(self) -> float:
        return arithmetic.mean(float(s.strict_format) for s in self.samples)

    def format_rewards(self) -> list[str]:
        """The rewards that score the output format (by name: *format*, *xml*)."""
        return [n for n in self.reward_names if any(h in n.lower() for h in FORMAT_HINTS)]

    def strict_format_seen(self) -> bool:
        """Some probed completion is in the strict format, cut or uncut."""
        return any(s.strict_format or s.strict_format_uncut for s in self.samples)

    def format_never_met(self) -> bool:
        """No probed completion has the format: strict format nowhere, and every format reward
        constant at no credit (<= 0) on every completion, cut or uncut."""
        if self.strict_format_seen():
            return False
        names = self.format_rewards()
        st = self.reward_stats()
        return bool(names) and all(st[n]["variance"] == 0 and st[n]["mean"] <= 0 for n in names)

    def truncation_hides_signal(self) -> bool:
        """The cut-off is what removes the signal: the completions it cuts would score better
        uncut (more reward, or the strict format), so a longer length gives GRPO something."""
        cut = [s for s in self.samples if s.truncated]
        return any(s.reward_uncut > s.reward or (s.strict_format_uncut and not s.strict_format)
                   for s in cut)


CHUNK = 64  # prompts sampled, scored and written to the pass-rates file at a time


def probe(config: Any, *, prompts: int | None = 32, generations: list[int] | None = None,
          budget: int | None = None, pass_rates: str | None = None,
          on_chunk: Callable[[int, int, int, float], None] | None = None, **request: Any) -> ProbeResult:
    """Sample `prompts` training prompts (None: every one) x max(generations) completions and score
    them. `pass_rates`: a file each prompt's pass rate is appended to, CHUNK prompts at a time,
    and prompts already in it are skipped (a stopped probe goes on where it was);
    `on_chunk(done, todo, resumed, seconds sampling)` after each chunk. `request`: the other fields of
    sampling/sampler.SampleRequest the probe lets a caller choose (model: None samples the
    config's base_model; seed, backend, device, batch_size, progress, correct_reward)."""
    import random
    import time

    started = time.perf_counter()
    if prompts is not None and prompts < 1:
        raise ProbeError(f"--prompts {prompts}: must be at least 1")
    if not request.get("model"):  # `--model ""` as left out: the config's base_model
        request.pop("model", None)
    sampler = Sampler(SampleRequest(config, split="train", flags=True, hub=True, tokenizer_fix=TOKENIZER_FIX,
                                    **request))
    run = sampler.run
    limit, group = run.completion_length, run.trl.num_generations
    # default: the config's G and half of it; the config's G is always compared
    candidates = sorted(set(generations or [g for g in (group // 2, group) if g >= 2]) | {group})
    if any(g < 2 for g in candidates):
        raise ProbeError(f"--generations {candidates}: each must be at least 2 (GRPO compares "
                         "completions within a group)")
    if budget is None:
        budget = max(2 * limit, limit + 64)
    if budget < limit:
        raise ProbeError(f"--budget {budget}: must be at least trl.max_completion_length ({limit})")
    if sampler.request.model is None and not run.base_model:
        raise ProbeError("base_model = (not set): the probe samples the run's base model; "
                         "set `base_model:` or pass --model DIR")
    sampler.prepare()
    rows = sum(len(load_rows(spec, "train")) for spec in dataset_entries(run, "train"))
    problems = sampler.problems()
    rendered = len(problems)
    seed = sampler.request.seed
    chosen = (list(range(len(problems))) if prompts is None
              else sorted(random.Random(seed).sample(range(len(problems)), min(prompts, len(problems)))))
    done = set(read_pass_rates(pass_rates, "--pass-rates")) if pass_rates and Path(pass_rates).exists() else set()
    todo = [i for i in chosen if prompt_key(problems[i].messages) not in done]
    problems = [problems[i] for i in todo]
    n = max(candidates)  # every G in the table is estimated from samples, never extrapolated
    settings = SamplingSettings.of(run, n=n, max_new_tokens=budget, seed=seed)
    tok = sampler.tokenizer
    eos = tok.eos_token_id
    eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
    samples: list[Sample] = []
    backend, rollouts = "", []
    longest = max((len(p.input_ids) for p in problems), default=0)
    size = CHUNK if pass_rates or prompts is None else max(len(problems), 1)
    sampling = time.perf_counter()
    with sampler.engine(max_model_len=longest + budget) if problems else nullcontext() as engine:
        for start in range(0, len(problems), size):
            chunk = problems[start:start + size]
            out = sampler.generate(chunk, [settings], generator=engine, desc="probe: sampling",
                                   max_model_len=longest + budget)
            scored = _score(sampler, chunk, out, limit, eos_ids)
            samples += scored
            backend, rollouts = out.backend, rollouts + (out.rollouts[0] if out.loop else [])
            if pass_rates:
                append_pass_rates(pass_rates, _rate_records(chunk, scored))
            if on_chunk is not None:
                on_chunk(start + len(chunk), len(problems), len(chosen) - len(todo), time.perf_counter() - sampling)
    mbs = run.micro_batch_size * run.gradient_accumulation_steps
    result = ProbeResult(
        config=str(config) if not isinstance(config, dict) else "(mapping)", model=str(sampler.model),
        backend=backend, prompts=len(problems), samples_per_prompt=n, dataset_rows=rows,
        max_completion_length=limit, budget=budget, temperature=settings.temperature,
        num_generations=group, prompts_per_step=max(1, mbs // group), correct_reward=sampler.judge.name,
        reward_names=[r.name for r in sampler.rewards], samples=samples, problem_indices=todo, run=run,
        prompt_tokens_max=longest, max_model_len=run.vllm.max_model_len, generations=candidates,
        rendered=rendered, tools=tool_stats(rollouts) if rollouts else None, resumed=len(chosen) - len(todo),
    )
    if problems:
        result.recommended_max_model_len = vllm_budget(sampler, result.recommended_length()[0])
    result.wall_s = time.perf_counter() - started
    return result


def _rate_records(problems: list, samples: list[Sample]) -> list[dict]:
    """Each problem's line of the pass-rates file (sources/pass_rates.py)."""
    by_problem: dict[int, list[Sample]] = {}
    for s in samples:
        by_problem.setdefault(s.prompt, []).append(s)
    return [pass_rate_record(p.messages, sum(s.correct for s in by_problem[p.index]) / len(by_problem[p.index]),
                             len(by_problem[p.index]), p.index) for p in problems]


def vllm_budget(sampler: Sampler, completion_length: int) -> int | None:
    """`vllm.max_model_len` for the longest training prompt plus `completion_length`, from the
    stats tool (every prompt counted, not just the probed ones) on the config the probe read;
    None for an in-memory config. The tokenizer is the probed model's (--model DIR beside a
    config naming a Hub id, offline)."""
    if isinstance(sampler.request.config, dict):
        return None
    from ..seqstats.api import prompt_token_stats

    return prompt_token_stats(sampler.cfg, tokenizer=sampler.tokenizer, max_completion_length=completion_length,
                              progress=False).recommended_max_model_len


def _score(sampler: Sampler, problems: list, sampled: Sampled, limit: int, eos_ids: set[int]) -> list[Sample]:
    """Each completion cut at `limit` and scored as the trainer would score it; the cut ones
    scored again uncut."""
    from axolotl_grpo_rewards.gsm8k import is_strict_format

    samples = []
    for i, (problem, group) in enumerate(zip(problems, sampled.completions[0])):
        cut_ids = [ids[:limit] for _, ids in group]
        texts = [text if len(ids) <= limit else sampled.cut_text(0, i, j, cut)
                 for j, ((text, ids), cut) in enumerate(zip(group, cut_ids))]
        values, totals = sampler.score(problem, texts, cut_ids)
        correct = sampler.correct(values)
        # the cut ones scored again uncut: would a longer max_completion_length give signal?
        long = [j for j, (_, ids) in enumerate(group) if len(ids) > limit]
        uncut: dict[int, float] = {}
        if long:
            _, full = sampler.score(problem, [group[j][0] for j in long], [group[j][1] for j in long])
            uncut = dict(zip(long, full))
        for j, ((full_text, ids), text) in enumerate(zip(group, texts)):
            samples.append(Sample(
                prompt=problem.index, tokens=len(ids), ended=bool(ids) and ids[-1] in eos_ids,
                rewards={name: v[j] for name, v in values.items()}, reward=totals[j],
                correct=correct[j],
                strict_format=is_strict_format(text),
                reward_uncut=uncut.get(j),
                strict_format_uncut=is_strict_format(full_text) if j in uncut else None))
    return samples
