"""grpo_plugin.tools reaching TRL (issue 49, item 1): what GRPOConfig gets, what Axolotl's GRPO
trainer is built with, and the per-step `tools/*` metrics. The refusals are rows of
tests/data/broken_configs.yaml; a real `axolotl train` with the calculator is in test_tools_train.py."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.tools import trainer as tool_trainer


def run_with(**plugin):
    return read_run({"rl": "grpo", "chat_template": "qwen_25", "grpo_plugin": plugin})


def test_without_tools_nothing_reaches_grpo_config():
    assert tool_trainer.training_args(run_with()) == {}


def test_max_tool_calls_reaches_grpo_config():
    assert tool_trainer.training_args(run_with(tools=["calculator"], max_tool_calls=3)) == {
        "max_tool_calling_iterations": 3}
    assert tool_trainer.training_args(run_with(tools=["calculator"])) == {"max_tool_calling_iterations": 8}


class Environment:
    """A stand-in for TRL's environment_factory class."""


@pytest.fixture
def restored_strategy():
    from axolotl.core.trainers.grpo import GRPOStrategy

    original = GRPOStrategy.__dict__["set_trainer_kwargs"]
    yield GRPOStrategy
    GRPOStrategy.set_trainer_kwargs = original
    tool_trainer._installed.clear()


def test_axolotls_grpo_trainer_gets_the_contained_tools(restored_strategy, caplog):
    tools = tool_trainer.install(run_with(tools=["calculator"], tool_timeout_s=3,
                                          environment=f"{__name__}.Environment"))
    tool_trainer.install(run_with(tools=["calculator"]))  # a second install wraps the original, once
    kwargs = restored_strategy.set_trainer_kwargs(SimpleNamespace(trl=None))
    (calculator,) = kwargs["tools"]
    assert calculator.__name__ == "calculator" and calculator(expression="6*7") == "42"
    assert "environment_factory" not in kwargs  # the second install had none
    assert tools[0](expression="1/0") == "error: division by zero"
    # no level set by the test: the line must pass the logger's own level, as in `axolotl train`
    assert "tools for the rollouts: calculator; environment " in caplog.text and "within 3 s" in caplog.text


def test_the_environment_class_is_passed_as_the_factory(restored_strategy):
    tool_trainer.install(run_with(environment=f"{__name__}.Environment"))
    kwargs = restored_strategy.set_trainer_kwargs(SimpleNamespace(trl=None))
    assert kwargs["environment_factory"] is Environment and "tools" not in kwargs


def test_each_step_logs_the_contained_errors_and_timeouts():
    from axolotl_grpo_plugin.tools import contain
    from axolotl_grpo_rewards.tools import calculator

    tool = contain(calculator)
    callbacks = []
    trainer = SimpleNamespace(_metrics={"train": defaultdict(list)}, add_callback=callbacks.append)
    tool_trainer.attach_metrics(trainer, [tool])
    tool(expression="2+2")
    tool(wrong="argument")
    callbacks[0].on_step_end(None, None, None)
    callbacks[0].on_step_end(None, None, None)
    assert trainer._metrics["train"]["tools/errors"] == [1.0, 0.0]
    assert trainer._metrics["train"]["tools/timeouts"] == [0.0, 0.0]
    assert trainer._metrics["train"]["tools/error_rate"] == [0.5, 0.0]  # 1 of 2 calls; no calls: 0
