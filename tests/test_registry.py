"""Registered names work through Axolotl 0.19's real loaders; wrong names say what exists."""

import sys
import textwrap

import pytest

import axolotl_grpo_plugin
from axolotl_grpo_plugin.registry import REWARDS, TRANSFORMS, Registry, UnknownNameError
from axolotl_grpo_rewards import gsm8k


FIVE = {"correctness", "int", "strict_format", "soft_format", "xmlcount"}


def test_builtin_names():
    assert FIVE <= set(REWARDS.names())
    assert "gsm8k" in TRANSFORMS.names()


@pytest.mark.parametrize("name", sorted(FIVE))
def test_reward_names_resolve_through_axolotls_reward_loader(name):
    from axolotl.core.trainers.grpo import GRPOStrategy

    func = GRPOStrategy.get_reward_func(REWARDS.import_path(name))
    # Axolotl gets the contained wrapper: same function inside, same metric name for TRL.
    assert func.__wrapped__ is gsm8k.REWARD_FUNCS[name] is REWARDS.load_unwrapped(name)
    assert func.__name__ == gsm8k.REWARD_FUNCS[name].__name__
    assert func(completions=["<answer>\n7\n</answer>"], answer=["7"]) == gsm8k.REWARD_FUNCS[name](
        completions=["<answer>\n7\n</answer>"], answer=["7"])


def test_transform_name_resolves_through_axolotls_rl_dataset_loader():
    from axolotl.prompt_strategies.dpo import load as load_rl_transform
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault({})
    # The short name itself is not importable by Axolotl: this is why the plugin rewrites it.
    assert load_rl_transform("gsm8k", cfg, dataset_idx=0) is None
    assert load_rl_transform("axolotl_grpo_plugin.transforms.gsm8k.load", cfg, dataset_idx=0) is None
    loaded = load_rl_transform(TRANSFORMS.import_path("gsm8k"), cfg, dataset_idx=0)
    fn, map_kwargs = loaded
    assert fn({"text": "q", "label": "5"})["answer"] == "5"
    assert map_kwargs == {"remove_columns": "__all__"}


def test_unknown_attribute_lists_registered_names():
    with pytest.raises(AttributeError, match="Did you mean 'correctness'"):
        axolotl_grpo_plugin.reward_corectness  # noqa: B018
    with pytest.raises(AttributeError):
        axolotl_grpo_plugin.something_else  # noqa: B018


def test_unknown_name_message_has_closest_match_and_all_names():
    with pytest.raises(UnknownNameError) as err:
        REWARDS.load("strict_fromat")
    message = str(err.value)
    assert "Did you mean 'strict_format'?" in message
    for name in FIVE:
        assert name in message


def test_entry_points_from_other_packages(tmp_path, monkeypatch):
    """A third-party package registers a reward and a transform by entry point."""
    (tmp_path / "thirdparty_rewards.py").write_text(textwrap.dedent("""
        def length_reward(completions, **kwargs):
            return [float(len(str(c))) for c in completions]
        def load(cfg, dataset_idx=0):
            return (lambda row: {"prompt": row["q"]}), {}
    """))
    dist = tmp_path / "thirdparty_rewards-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-rewards\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [axolotl_grpo_plugin.rewards]
        length = thirdparty_rewards:length_reward
        [axolotl_grpo_plugin.transforms]
        qonly = thirdparty_rewards:load
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    rewards = Registry("reward", "axolotl_grpo_plugin.rewards", {}, "reward_")
    transforms = Registry("transform", "axolotl_grpo_plugin.transforms", {}, "transform_")
    assert rewards.load("length")(["ab", "abcd"]) == [2.0, 4.0]
    fn, _ = transforms.load("qonly")(None)
    assert fn({"q": "hi"}) == {"prompt": "hi"}
    sys.modules.pop("thirdparty_rewards", None)
