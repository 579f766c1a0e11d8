"""`grpo_plugin.trl_args`: GRPOConfig options Axolotl 0.19 drops, checked and passed through."""

import pytest

from axolotl_grpo_plugin.config import trl_args
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.config.unknown_keys import unknown_key_problems
from axolotl_grpo_plugin.plugin import GRPOPlugin


def cfg_with(**args):
    return {"rl": "grpo", "trl": {}, "grpo_plugin": {"trl_args": args}}


def test_known_grpo_options_of_the_right_type_pass():
    assert trl_args.check(read_run(cfg_with(top_entropy_quantile=0.2, delta=1.5, disable_dropout=True))) == []


@pytest.mark.parametrize("args, key, says", [
    ({"top_entropy_quantil": 0.2}, "top_entropy_quantil", "did you mean `top_entropy_quantile`?"),
    ({"top_entropy_quantile": "a lot"}, "top_entropy_quantile", "GRPOConfig expects float"),
    ({"beta": 0.1}, "beta", "set `trl.beta` instead"),
    ({"steps_per_generation": 4}, "steps_per_generation", "trl.generation_batch_size"),
    ({"learning_rate": 1e-5}, "learning_rate", "set top-level `learning_rate` instead"),
    ({"top_entropy_quantile": 1.5}, "top_entropy_quantile", "GRPOConfig states it must be in [0, 1]"),
    ({"delta": 0}, "delta", "GRPOConfig states it must be > 0"),
    ({"max_tool_calling_iterations": -1}, "max_tool_calling_iterations", "GRPOConfig states it must be >= 0"),
])
def test_bad_options_name_the_key_and_the_fix(args, key, says):
    (problem,) = trl_args.check(read_run(cfg_with(**args)))
    assert problem.key == f"grpo_plugin.trl_args.{key}"
    assert says in f"{problem.message} {problem.fix}"


def test_a_grpo_option_under_trl_points_to_trl_args():
    problems = unknown_key_problems({"rl": "grpo", "trl": {"top_entropy_quantile": 0.2}})
    (problem,) = [p for p in problems if p.key == "trl.top_entropy_quantile"]
    assert "grpo_plugin: {trl_args: {top_entropy_quantile: 0.2}}" in problem.fix


def test_the_plugin_hands_them_to_the_trainer_arguments():
    plugin = GRPOPlugin()
    assert plugin.get_training_args(cfg_with(delta=1.5)) == {"delta": 1.5}
    assert plugin.get_training_args({"rl": "grpo", "trl": {}}) is None
