"""Greedy held-out evaluation of the demo, through the project's evaluator.

Before/after numbers only mean something if "format" and "correct" are judged
exactly as during training, so this runs `axolotl_grpo_plugin.evaluate` on the
demo's own config: prompts rendered the way the trainer renders them, completions
scored by the reward functions the config lists, as TRL calls them. This module
adds the any-layout accuracy that tells format gains from reasoning gains, and
sampled pass@1 / pass@k (any layout) on the first problems: how often sampling
finds the answer that one greedy try misses, the gap GRPO is meant to close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..embedded.pretrain import one_thread
from ..embedded.sample_data import DATA_DIR, DEMO_TEST_FILE
from . import DEMO_CONFIG


HELDOUT_FILE = DATA_DIR / DEMO_TEST_FILE
_NUMBER = re.compile(r"\d+")
# pass@k costs SAMPLES completions per problem: on the first SAMPLED_PROBLEMS problems only,
# so the two evaluations stay a small part of the demo's five minutes
SAMPLES, SAMPLED_PROBLEMS = 8, 64


@dataclass(frozen=True)
class Scores:
    """Held-out summary: shares in [0, 1] and the mean of the summed rewards.

    ``accuracy`` is the training reward's verdict (the answer must sit in ``<answer>``);
    ``any_layout_accuracy`` takes the last number of the text in whatever layout, so
    a reader can tell format gains from arithmetic gains.
    """

    problems: int
    format_compliance: float
    accuracy: float
    mean_total_reward: float
    any_layout_accuracy: float = 0.0
    samples: int = 0  # sampled completions per problem behind the pass@ figures (0: none)
    sampled_problems: int = 0
    pass_at_1: float | None = None  # sampled, any layout: one sample's chance to be right
    pass_at_k: float | None = None  # sampled, any layout: at least one of `samples` right

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def last_number(text: str) -> str | None:
    """The last integer written in ``text`` (thousands separators ignored)."""
    numbers = _NUMBER.findall(text.replace(",", ""))
    return (numbers[-1].lstrip("0") or "0") if numbers else None


def _right(record: dict) -> bool:
    return last_number(record["completion"]) == str(record["answer"])


def sampled_pass_at(result) -> tuple[int, int, float, float] | None:
    """(samples per problem, problems, pass@1, pass@samples) of the sampled completions in
    ``result``, judged in any layout; None when it has none."""
    from ..evaluate.passk import pass_at_k

    groups: dict[int, list[bool]] = {}
    for record in result.records:
        if record["kind"] == "sample":
            groups.setdefault(record["problem"], []).append(_right(record))
    if not groups:
        return None
    n = min(len(group) for group in groups.values())
    ones = [pass_at_k(len(g), sum(g), 1) for g in groups.values()]
    alls = [pass_at_k(len(g), sum(g), n) for g in groups.values()]
    return n, len(groups), sum(ones) / len(ones), sum(alls) / len(alls)


def scores_of(result, sampled=None) -> tuple[Scores, list[str]]:
    """The demo's figures from an :class:`~axolotl_grpo_plugin.evaluate.core.EvalResult`
    (greedy; pass@ from ``sampled``, another result with samples, if given), and the greedy
    completions in problem order."""
    greedy = [record for record in result.records if record["kind"] == "greedy"]
    right = sum(map(_right, greedy))
    passes = sampled_pass_at(sampled) if sampled is not None else None
    extra = {} if passes is None else dict(zip(("samples", "sampled_problems", "pass_at_1", "pass_at_k"), passes))
    return Scores(
        problems=result.n_problems,
        format_compliance=result.format_compliance,
        accuracy=result.accuracy,
        mean_total_reward=result.reward_mean,
        any_layout_accuracy=right / max(1, len(greedy)),
        **extra,
    ), [record["completion"] for record in greedy]


def evaluate(model_dir: str | Path, path: str | Path = HELDOUT_FILE, device: str = "cpu",
             config: str | Path | dict = DEMO_CONFIG, samples: int = SAMPLES,
             sampled_problems: int = SAMPLED_PROBLEMS) -> tuple[Scores, list[str]]:
    """Greedy-decode every held-out problem with ``model_dir`` and score it as ``config`` trains;
    with ``samples``, also sample that many completions (at the config's temperature) for each of
    the first ``sampled_problems`` problems for pass@1 / pass@k."""
    from ..config.run import read_run
    from ..evaluate.core import evaluate as evaluate_model
    from ..sampling import prompts
    from ..sampling.models import DEFAULT_BATCH_SIZE, load_tokenizer, make_generator

    cfg = prompts.load_config(config)
    with one_thread():
        # one tokenizer, one read of the held-out file and one model load serve both passes
        run = read_run(cfg)
        tokenizer = load_tokenizer(run, str(model_dir))
        problems = prompts.build_problems(cfg, tokenizer, dataset=str(path), run=run)
        generator = make_generator(str(model_dir), tokenizer, run, backend="transformers", device=device,
                                   batch_size=DEFAULT_BATCH_SIZE)
        common = dict(tokenizer=tokenizer, generator=generator, progress=False)
        result = evaluate_model(cfg, str(model_dir), samples=0, problems=problems, **common)
        sampled = evaluate_model(cfg, str(model_dir), samples=samples, problems=problems[:sampled_problems],
                                 **common) if samples and sampled_problems else None
    return scores_of(result, sampled)
