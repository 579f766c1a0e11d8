"""`Sampler`: one model sampled on one config's own prompts, the way training samples them, and
scored with the config's rewards. `probe` and `evaluate` both sample through it, so a fix to a
step lands once; each keeps only what it alone decides (the probe: its group sizes, token budget
and pass-rate verdict; evaluate: its greedy and sampled passes, accuracy and pass@k).

The steps, in this order, each run once when first needed:

    Sampler(request)     the model the request names is checked, then the config read once
                         (`prompts.load_config`: names.load_config, then config/run.read_run)
    .prepare()           the four steps below, in their order (a caller may check its own
                         values on `.run` first, as the probe does)
    .model               the request's model, else the config's `base_model` (checked)
    .rewards, .judge     the config's rewards as TRL calls them, and the one that judges "correct"
    .tokenizer           the request's, else the model's, loaded as the trainer loads it
    .tools               the run's tools, contained (none without `grpo_plugin.tools`)
    .problems()          the config's dataset rows for the request's split, rendered as TRL renders them
    .generate(...)       the backend picked (vLLM or transformers: `models.make_generator`), the
                         completions of each pass, through the tool loop with tools
    .score(...)          the rewards on one problem's completions, and their weighted total
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config.run import Run, read_run
from ..registry import correctness
from . import generation, models, scoring
from .generation import Completion, Generator, SamplingSettings
from .prompts import EvalError, Problem, build_problems, load_config, named
from .tool_loop import Rollout, ToolLoop, run_tools


@dataclass(frozen=True)
class SampleRequest:
    """What to sample and how: the inputs probe and evaluate share."""

    config: Any  # a yaml path or a mapping, read once by the Sampler
    model: Any = None  # a model directory, Hub id or loaded model; None: the config's `base_model`
    split: str = "test"  # which prompts (prompts.py: `train` reads `datasets:`)
    dataset: str | None = None  # a file or Hub id read instead, with the config's transform
    limit: int | None = None  # the first N problems only
    seed: int = 0
    backend: str = "auto"  # auto (vLLM when it can run), vllm or transformers
    device: str | None = None  # the transformers backend's (None: CUDA when there is one)
    batch_size: int = models.DEFAULT_BATCH_SIZE  # sequences per transformers `generate` call
    correct_reward: str | None = None  # the reward that judges "correct" (registry/correctness.py)
    tokenizer: Any = None  # one already loaded (the trainer's), else the model's
    progress: bool = True  # a progress bar on the terminal
    # how errors read: the CLI's flags (`--correct-reward`) rather than the arguments, a Hub id
    # that cannot be downloaded now refused before anything loads, and the fix when no tokenizer
    # loads, in the command's own words
    flags: bool = False
    hub: bool = False
    tokenizer_fix: str | None = None


@dataclass
class Sampled:
    """What `Sampler.generate` returns: per pass (one per SamplingSettings), per problem, its
    completions as (text the rewards read, token ids); with the run's tools, each completion's
    turns and calls too."""

    backend: str  # what generated: vllm, transformers, vllm-server, ... (+tools)
    tokenizer: Any = field(repr=False)
    loop: ToolLoop | None = field(default=None, repr=False)
    completions: list[list[list[Completion]]] = field(default_factory=list)
    rollouts: list[list[list[Rollout]] | None] = field(default_factory=list)

    def cut_text(self, pass_index: int, problem: int, completion: int, cut_ids: list[int]) -> str:
        """The text the rewards read of a completion cut to `cut_ids` (a shorter completion length):
        with tools, its last assistant turn within them; else the ids decoded as the trainer decodes."""
        if self.loop is None:
            return self.tokenizer.decode(cut_ids, skip_special_tokens=True)
        return self.loop.final_text(self.rollouts[pass_index][problem][completion], len(cut_ids))


class Sampler:
    """A request's model sampled on its config's prompts and scored with its rewards (module
    docstring: the steps and their order)."""

    def __init__(self, request: SampleRequest):
        self.request = request
        if request.model is not None:
            models.check_model(request.model, "--model", hub=request.hub)
        self.cfg: dict[str, Any] = load_config(request.config)  # the one reading of the config
        self.run: Run = read_run(self.cfg)

    def prepare(self) -> Sampler:
        """Every step before the prompts, in order: the model to sample, the rewards and the judge,
        the tokenizer, the tools. What a wrong value stops is said here, before the model loads."""
        _ = self.model, self.judge, self.tokenizer, self.tools
        return self

    @functools.cached_property
    def model(self) -> Any:
        """The model to sample: the request's, else the config's `base_model` (checked here)."""
        if self.request.model is not None:
            return self.request.model
        if not self.run.base_model:
            raise EvalError("base_model = (not set): set `base_model:` in the config, or name the model to sample")
        models.check_model(self.run.base_model, "`base_model:` (or pass --model)", hub=self.request.hub)
        return self.run.base_model

    @functools.cached_property
    def rewards(self) -> list[scoring.Reward]:
        return scoring.load_rewards(self.run)

    @functools.cached_property
    def judge(self) -> scoring.Reward:
        """The reward that decides "correct" (`scoring.correctness_reward`)."""
        return scoring.correctness_reward(self.rewards, self.request.correct_reward,
                                          named("correct_reward", self.request.flags))

    @functools.cached_property
    def tokenizer(self) -> Any:
        if self.request.tokenizer is not None:
            return self.request.tokenizer
        where = named("model", self.request.flags) if self.request.model is not None else "base_model"
        return models.load_tokenizer(self.run, self.model, where, fix=self.request.tokenizer_fix)

    @functools.cached_property
    def tools(self) -> list:
        """The run's tools, contained as in training; with tools, the tokenizer gets the chat
        template whose tool-call syntax the loop parses."""
        return run_tools(self.run, self.tokenizer)

    def problems(self) -> list[Problem]:
        """The request's split of the config's dataset, rendered as TRL renders it (with the tools)."""
        r = self.request
        tools = self.tools
        return build_problems(self.cfg, self.tokenizer, run=self.run, split=r.split, dataset=r.dataset,
                              limit=r.limit, tools=tools, flags=r.flags)

    def _generator(self, max_model_len: int | None) -> Generator:
        r = self.request
        return models.make_generator(self.model, self.tokenizer, self.run, backend=r.backend, device=r.device,
                                     batch_size=r.batch_size, seed=r.seed, max_model_len=max_model_len)

    @contextlib.contextmanager
    def engine(self, max_model_len: int | None = None) -> Iterator[Generator]:
        """One backend for several `generate` calls (the probe's chunks of a whole dataset: a vLLM
        engine loads once), stopped when the block ends."""
        gen = self._generator(max_model_len)
        try:
            yield gen
        finally:
            generation.release(gen)

    def generate(self, problems: Sequence[Problem], passes: Sequence[SamplingSettings], *,
                 generator: Generator | None = None, max_model_len: int | None = None,
                 desc: str = "sampling") -> Sampled:
        """Each pass's `n` completions of every problem (a pass with `n == 0` is skipped), through
        the tool loop with the run's tools. The backend is the request's (`models.make_generator`;
        `max_model_len` replaces `vllm.max_model_len`), stopped after the last pass; `generator`
        replaces it and is left running (the trainer's engine, which periodic evaluation borrows)."""
        r = self.request
        gen = generator if generator is not None else self._generator(max_model_len)
        loop = ToolLoop(gen, self.tokenizer, self.tools, self.run.plugin.max_tool_calls) if self.tools else None
        sampled = Sampled((loop or gen).name, self.tokenizer, loop)
        ids = [p.input_ids for p in problems]
        bar = _progress_bar(len(problems) * sum(s.n for s in passes), desc, r.progress)
        try:
            for settings in passes:
                if settings.n == 0:
                    sampled.completions.append([[] for _ in problems])
                    sampled.rollouts.append(None)
                    continue
                sampled.completions.append((loop or gen).generate(ids, settings, bar))
                sampled.rollouts.append(loop.last if loop else None)
        finally:
            if bar is not None:
                bar.close()
            if generator is None:  # built here: its engine is ours to stop (a passed one is the caller's)
                generation.release(gen)
        return sampled

    def score(self, problem: Problem, texts: Sequence[str],
              token_ids: Sequence[list[int]]) -> tuple[dict[str, list[float]], list[float]]:
        """The config's rewards on completions of `problem`, called as TRL calls them: reward name ->
        one value per completion (NaN where a reward returned None), and the weighted totals."""
        values = scoring.score(self.rewards, [problem.messages] * len(texts), texts, token_ids,
                               [problem.columns] * len(texts))
        return values, scoring.weighted_total(values, self.rewards)

    def correct(self, values: dict[str, list[float]]) -> list[bool]:
        """Which completions the judge calls correct (registry/correctness.py's rule)."""
        return [correctness.is_correct(v) for v in values[self.judge.name]]


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    from ..system.quiet import terminal

    return tqdm(total=total, desc=desc, unit="completion", dynamic_ncols=True, file=terminal())
