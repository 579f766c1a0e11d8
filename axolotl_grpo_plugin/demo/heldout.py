"""Greedy held-out evaluation of the demo, through the project's evaluator.

Before/after numbers only mean something if "format" and "correct" are judged
exactly as during training, so this runs `axolotl_grpo_plugin.evaluate` on the
demo's own config: prompts rendered the way the trainer renders them, completions
scored by the reward functions the config lists, as TRL calls them. This module
only adds the any-layout accuracy that tells format gains from arithmetic gains.
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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def last_number(text: str) -> str | None:
    """The last integer written in ``text`` (thousands separators ignored)."""
    numbers = _NUMBER.findall(text.replace(",", ""))
    return (numbers[-1].lstrip("0") or "0") if numbers else None


def scores_of(result) -> tuple[Scores, list[str]]:
    """The demo's figures from an :class:`~axolotl_grpo_plugin.evaluate.core.EvalResult`,
    and the greedy completions in problem order."""
    greedy = [record for record in result.records if record["kind"] == "greedy"]
    right = sum(last_number(record["completion"]) == str(record["answer"]) for record in greedy)
    return Scores(
        problems=result.n_problems,
        format_compliance=result.format_compliance,
        accuracy=result.accuracy,
        mean_total_reward=result.reward_mean,
        any_layout_accuracy=right / max(1, len(greedy)),
    ), [record["completion"] for record in greedy]


def evaluate(model_dir: str | Path, path: str | Path = HELDOUT_FILE, device: str = "cpu",
             config: str | Path | dict = DEMO_CONFIG) -> tuple[Scores, list[str]]:
    """Greedy-decode every held-out problem with ``model_dir`` and score it as ``config`` trains."""
    from ..evaluate.core import DEFAULT_BATCH_SIZE
    from ..evaluate.core import evaluate as evaluate_model

    with one_thread():
        result = evaluate_model(config, str(model_dir), dataset=str(path), samples=0, device=device,
                                batch_size=DEFAULT_BATCH_SIZE, backend="transformers", progress=False)
    return scores_of(result)
