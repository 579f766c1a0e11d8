"""Axolotl 0.19-0.21 (issue 17): the plugin acts only on configs that are ours, as 0.21 calls an
installed plugin's hooks on every config; the entry point is the name configs list; the hooks
0.21 added or changed answer as Axolotl expects. Runs on both versions; the tests that need
0.21's entry-point registration skip on 0.19."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from axolotl_grpo_plugin.plugin import GRPOPlugin
from axolotl_grpo_plugin.training.enabled import PLUGIN_NAMES, applies


REPO = Path(__file__).resolve().parents[1]

# An SFT config our checks would refuse in several ways (no rl: grpo, bf16 on a CPU launch).
SFT = {"base_model": "x", "bf16": True, "datasets": [{"path": "a.jsonl", "type": "alpaca"}],
       "micro_batch_size": 3}
# A GRPO config without `plugins:` whose batch arithmetic is wrong (3 does not divide 2 x 1 x 1).
BAD_GRPO = {"rl": "grpo", "bf16": False, "fp16": False, "micro_batch_size": 2, "gradient_accumulation_steps": 1,
            "trl": {"num_generations": 3, "max_completion_length": 16}}


@pytest.fixture
def one_process(monkeypatch):
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_NUM_PROCESSES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.mark.parametrize("cfg, ours", [
    (SFT, False),
    ({"rl": "dpo"}, False),
    ({"rl": "grpo"}, True),
    ({"rl": "dpo", "plugins": ["axolotl_grpo_plugin.GRPOPlugin"]}, True),
    ({"plugins": ["axolotl_grpo_plugin.plugin:GRPOPlugin"]}, True),
    ({"plugins": ["axolotl.integrations.liger.LigerPlugin"]}, False),
    ({"grpo_plugin": {}}, True),
    # an SFT cold start listing the threads plugin may carry the section for our transforms
    ({"plugins": ["axolotl_grpo_plugin.CPUThreadsPlugin"], "grpo_plugin": {"system_prompt_role": "system"}}, False),
    ({"plugins": ["axolotl_grpo_plugin.CPUThreadsPlugin"], "grpo_plugin": {}, "rl": "grpo"}, True),
])
def test_which_configs_are_ours(cfg, ours):
    assert applies(cfg) is ours


def test_every_hook_leaves_a_config_that_is_not_ours_alone(one_process):
    plugin, cfg = GRPOPlugin(), {**SFT}
    plugin.register(cfg)  # our checks would refuse it: not GRPO, bf16 without a GPU
    assert cfg == SFT
    assert plugin.get_training_args(cfg) is None
    assert plugin.get_trainer_cls(cfg) is None
    plugin.pre_model_load(cfg)
    assert plugin.add_callbacks_pre_trainer(cfg, model=None) == []
    plugin.post_trainer_create(cfg, trainer=object())  # ours would read the trainer's internals
    plugin.post_train_unload(cfg)


def test_a_grpo_config_is_checked_without_a_plugins_line(one_process):
    with pytest.raises(SystemExit) as exit_:
        GRPOPlugin().register({**BAD_GRPO, "trl": dict(BAD_GRPO["trl"])})
    assert "trl.num_generations" in str(exit_.value)


def test_the_rl_builder_gets_no_trainer_class_from_us():
    """0.21's RL builder asks every plugin's get_trainer_cls; anything but None replaces
    Axolotl's GRPO trainer (and with it 0.21's context-parallel and async choices)."""
    assert GRPOPlugin().get_trainer_cls({**BAD_GRPO}) is None


def test_a_second_instance_under_another_name_does_nothing(one_process):
    """A config listing `axolotl_grpo_plugin.plugin.GRPOPlugin` beside the entry point's
    `axolotl_grpo_plugin.GRPOPlugin` gives Axolotl two instances; only the first acts, so
    one vLLM server is started, not two."""
    from axolotl.integrations.base import PluginManager

    manager = PluginManager.get_instance()
    saved = dict(manager.plugins)
    first, second = GRPOPlugin(), GRPOPlugin()
    try:
        manager.plugins.clear()
        manager.plugins["axolotl_grpo_plugin.GRPOPlugin"] = first
        manager.plugins["axolotl_grpo_plugin.plugin.GRPOPlugin"] = second
        second.register({**BAD_GRPO, "trl": dict(BAD_GRPO["trl"])})  # silent
        with pytest.raises(SystemExit):
            first.register({**BAD_GRPO, "trl": dict(BAD_GRPO["trl"])})
    finally:
        manager.plugins.clear()
        manager.plugins.update(saved)


def _entry_point() -> str:
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    (target,) = groups["axolotl.plugins"].values()
    return target


def test_the_entry_point_is_the_name_configs_list():
    """Axolotl keys plugins by name: the entry point normalises (`module:Class` ->
    `module.Class`) to the name our configs list, so a listed plugin is not loaded twice."""
    from axolotl.integrations.base import load_plugin

    name = _entry_point().replace(":", ".")
    assert name == "axolotl_grpo_plugin.GRPOPlugin" and name in PLUGIN_NAMES
    for config in sorted((REPO / "configs").glob("*.yaml")):
        if "\nrl: grpo\n" in config.read_text():  # not the SFT cold start, which the plugin leaves alone
            assert f"  - {name}\n" in config.read_text(), config.name
    assert isinstance(load_plugin(name), GRPOPlugin)


def _needs_entry_point_registration():
    base = pytest.importorskip("axolotl.integrations.base")
    if not hasattr(base, "get_builtin_plugins"):
        pytest.skip("this Axolotl runs only listed plugins (entry points: 0.21+)")
    if "axolotl_grpo_plugin.GRPOPlugin" not in base.get_builtin_plugins():
        pytest.skip("the plugin is not installed with its entry point (pip install -e .)")
    return base


def test_axolotl_runs_the_installed_plugin_on_grpo_configs_only(one_process):
    """Through Axolotl's own prepare_plugins (0.21): an SFT config passes untouched, a GRPO
    config without `plugins:` meets our checks."""
    _needs_entry_point_registration()
    from axolotl.utils.config import prepare_plugins
    from axolotl.utils.dict import DictDefault

    sft = DictDefault({**SFT})
    prepare_plugins(sft)
    assert sft.to_dict() == SFT
    with pytest.raises(SystemExit) as exit_:
        prepare_plugins(DictDefault({**BAD_GRPO, "trl": dict(BAD_GRPO["trl"])}))
    assert "trl.num_generations" in str(exit_.value)


def test_the_version_table_says_whether_axolotl_loads_installed_plugins():
    """`check` refuses a GRPO config without `plugins:` where Axolotl runs only listed plugins."""
    from axolotl_grpo_plugin.config import defaults

    base = pytest.importorskip("axolotl.integrations.base")
    assert defaults.AXOLOTL.loads_installed_plugins is hasattr(base, "PLUGIN_ENTRY_POINT_GROUP")
