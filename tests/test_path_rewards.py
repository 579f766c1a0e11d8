"""Rewards given as import paths (`my_module.my_reward`) run behind the same containment as
registered names: the config names a contained wrapper Axolotl's own loader imports, and a
per-reward opt-out (`reward_contained = False`) keeps the function as it is."""

from __future__ import annotations

import math
import pickle
import textwrap

import pytest
from conftest import importable_module

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.names import resolve_names
from axolotl_grpo_rewards.errors import RewardContractError


MODULE = textwrap.dedent('''
    import math

    def batch_mean(prompts, completions, **kwargs):
        return [1.0]  # one value for the whole batch: TRL would broadcast it

    def all_nan(prompts, completions, **kwargs):
        return [math.nan] * len(completions)

    def raises_on_b(prompts, completions, **kwargs):
        if "b" in completions:
            raise ValueError("model output broke me")
        return [1.0] * len(completions)

    def good(prompts, completions, answer, **kwargs):
        return [float(c == a) for c, a in zip(completions, answer)]

    def trusted(prompts, completions, **kwargs):
        return [2.0]
    trusted.reward_contained = False
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    return importable_module(tmp_path, monkeypatch, "user_rewards", MODULE)


def resolved(path: str) -> str:
    cfg = {"trl": {"reward_funcs": [path]}}
    assert resolve_names(cfg, read_run(cfg))[1] == []
    return cfg["trl"]["reward_funcs"][0]


def load_as_axolotl(path: str):
    from axolotl.core.trainers.grpo import GRPOStrategy

    return GRPOStrategy.get_reward_func(path)


def test_an_import_path_is_rewritten_to_its_contained_wrapper(user_module):
    path = resolved(f"{user_module}.good")
    assert path == f"axolotl_grpo_plugin.reward_path__{user_module}__good"
    reward = load_as_axolotl(path)
    assert reward.__name__ == "good"  # TRL's metric name rewards/good/mean is unchanged
    assert reward(prompts=["p", "p"], completions=["1", "2"], answer=["1", "1"]) == [1.0, 0.0]
    assert resolved(path) == path  # resolving twice (every rank, the server's config) is stable
    assert pickle.loads(pickle.dumps(reward)) is reward  # reward workers get the same wrapper


def test_one_value_per_batch_is_refused(user_module):
    reward = load_as_axolotl(resolved(f"{user_module}.batch_mean"))
    with pytest.raises(RewardContractError, match="returned 1 values for 3 completions"):
        reward(prompts=["p"] * 3, completions=["a", "b", "c"])


def test_all_nan_is_counted_as_errors(user_module, caplog):
    reward = load_as_axolotl(resolved(f"{user_module}.all_nan"))
    logged = {}
    values = reward(prompts=["p"] * 4, completions=["a"] * 4, log_metric=lambda k, v: logged.update({k: v}))
    assert values == [None] * 4  # TRL's "not applicable", never a made-up score
    assert logged["rewards/all_nan/errors"] == 4.0
    assert "returned NaN for all 4 completions" in caplog.text


def test_an_exception_scores_only_its_sample(user_module):
    reward = load_as_axolotl(resolved(f"{user_module}.raises_on_b"))
    assert reward(prompts=["p"] * 3, completions=["a", "b", "c"]) == [1.0, 0.0, 1.0]
    assert reward.errors == 1


def test_the_opt_out_keeps_the_function(user_module):
    path = f"{user_module}.trusted"
    assert resolved(path) == path
    reward = load_as_axolotl(path)
    assert reward(prompts=["p"], completions=["a", "b"]) == [2.0]  # as written, uncontained


def test_a_single_nan_stays_not_applicable(user_module):
    from axolotl_grpo_plugin.registry.containment import ContainedReward

    reward = ContainedReward(lambda prompts, completions, **kw: [math.nan, 1.0], "x", "m:x")
    assert reward(prompts=["p", "p"], completions=["a", "b"]) == [None, 1.0]
    assert reward.errors == 0
