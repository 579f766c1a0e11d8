"""One reward for a mixed dataset: each sample is scored by its task's reward, chosen by ``data_source``.

Like verl's ``default_compute_score``: the registered transforms write a
``data_source`` column (``gsm8k``, ``countdown``, ``math``), and ``by_data_source``
sends each sample to the accuracy reward of its source, so one config trains on
GSM8K + countdown + MATH at once. Each task keeps its own scale (GSM8K 2.0,
countdown and MATH 1.0); GRPO normalises advantages within a prompt's group,
which always shares one source.

A ``data_source`` that is neither in ROUTES nor itself a registered reward name
is a config error, raised at the first batch with the known sources listed:
the one case where a reward stops training, because no score would be right.
"""

from __future__ import annotations

from collections import defaultdict

from axolotl_grpo_rewards.errors import RewardConfigError


ROUTES = {
    "gsm8k": "correctness",
    "openai/gsm8k": "correctness",
    "countdown": "countdown",
    "math": "math_boxed",
    "math_boxed": "math_boxed",
    "code": "code_all_pass",
    "humaneval": "code_all_pass",
}
COLUMN = "data_source"


def reward_for(source: object):
    """The (contained) registered reward for one data source; RewardConfigError when there is none."""
    from . import REWARDS

    name = ROUTES.get(source) if isinstance(source, str) else None
    if name is None and isinstance(source, str) and source in REWARDS and source != "by_data_source":
        name = source
    if name is None:
        known = sorted(set(ROUTES) | (set(REWARDS.names()) - {"by_data_source"}))
        raise RewardConfigError(
            f"by_data_source: no reward for data_source={source!r}. Known data sources: "
            f"{', '.join(known)}. Fix: set `data_source` in your transform to one of them, "
            "or register a reward under that name (entry point group axolotl_grpo_plugin.rewards)."
        )
    return REWARDS.load(name)


def by_data_source(completions, data_source=None, **kwargs) -> list[float | None]:
    """The accuracy reward of each sample's task, picked by its ``data_source`` column."""
    if not isinstance(completions, (list, tuple)):
        return []
    n = len(completions)
    if not isinstance(data_source, (list, tuple)) or len(data_source) != n:
        raise RewardConfigError(
            "by_data_source: the dataset has no `data_source` column (one value per row). "
            "Fix: use the registered transforms (gsm8k, countdown, math), which write it, "
            "or add it in your own transform."
        )
    groups: dict[object, list[int]] = defaultdict(list)
    for i, source in enumerate(data_source):
        groups[source if isinstance(source, str) else repr(source)].append(i)
    rewards = {source: reward_for(source) for source in groups}  # all checked before any scoring
    scores: list[float | None] = [None] * n
    for source, indices in groups.items():
        sub_kwargs = {
            key: ([value[i] for i in indices] if isinstance(value, (list, tuple)) and len(value) == n else value)
            for key, value in kwargs.items()
        }
        sub_kwargs[COLUMN] = [data_source[i] for i in indices]
        values = rewards[source](completions=[completions[i] for i in indices], **sub_kwargs)
        for i, value in zip(indices, values):
            scores[i] = value
    return scores
