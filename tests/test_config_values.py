"""config/run.py's keys: each key's type and range, the value the checks compute with, and the
message a wrong value gets (key, value and fix come from the key's one declaration; `read_run`
reports every wrong value at once)."""

from __future__ import annotations

import math
import re

import pytest
from axolotl.utils.dict import DictDefault
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_plugin.config.args import GRPOPluginSettings
from axolotl_grpo_plugin.config.invalid import _model_in
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError


def at(key: str, value) -> dict:
    """A config with `value` at the dotted `key`."""
    head, _, tail = key.partition(".")
    return {head: {tail: value}} if tail else {head: value}


def read(key: str, value):
    """The value the Run holds for `key` set to `value`."""
    node = read_run(at(key, value))
    for part in key.split("."):
        node = getattr(node, part)
    return node


def problems(cfg: dict) -> list:
    with pytest.raises(GRPOConfigError) as err:
        read_run(cfg)
    return err.value.problems


@pytest.mark.parametrize("key, value, expected", [
    ("micro_batch_size", 4, 4), ("micro_batch_size", 4.0, 4), ("micro_batch_size", "4", 4),
    ("micro_batch_size", " 4 ", 4), ("micro_batch_size", "4.0", 4),
    ("learning_rate", "1.0e-6", 1e-6), ("learning_rate", 0.5, 0.5), ("val_set_size", 0, 0),
    ("trl.top_p", 1, 1), ("trl.top_k", 0, 0), ("trl.num_generations", 2, 2),
    ("vllm.port", 65535, 65535), ("vllm.gpu_memory_utilization", "0.85", 0.85),
    ("trl.use_vllm", True, True), ("bf16", "auto", "auto"), ("bf16", False, False),
    ("trl", {"a": 1}, {"a": 1}), ("datasets", ({"path": "x"},), [{"path": "x"}]),
    ("trl.reward_funcs", "correctness", ["correctness"]), ("trl.reward_funcs", ["a", "b"], ["a", "b"]),
    ("trl.reward_weights", [1, 0.5], [1, 0.5]),
])
def test_a_good_value_reads_as_the_checks_compute_with_it(key, value, expected):
    coerced = read(key, value)
    assert coerced == expected or (key == "trl" and coerced.model_dump(exclude_unset=True) == {})
    assert not isinstance(coerced, bool) or isinstance(expected, bool)


@pytest.mark.parametrize("key, value, message", [
    ("micro_batch_size", "four", "must be an integer"),
    ("micro_batch_size", 2.5, "must be an integer"),
    ("micro_batch_size", "2.5", "must be an integer"),
    ("micro_batch_size", "1e3", "must be an integer"),  # as Axolotl's schema (a pydantic int) refuses it
    ("micro_batch_size", True, "must be an integer"),  # YAML `true` is not 1
    ("micro_batch_size", math.inf, "must be an integer"),
    ("micro_batch_size", [4], "must be an integer"),
    ("micro_batch_size", 0, "must be >= 1"),
    ("micro_batch_size", -4, "must be >= 1"),
    ("trl.num_generations", 1, "must be >= 2"),
    ("learning_rate", 0, "must be > 0"),
    ("learning_rate", "fast", "must be a number"),
    ("learning_rate", False, "must be a number"),
    ("learning_rate", math.nan, "must be a number"),
    ("learning_rate", "inf", "must be a number"),
    ("val_set_size", -0.1, "must be >= 0"),
    ("trl.top_p", 0, "must be in (0, 1]"),
    ("trl.top_p", 1.5, "must be in (0, 1]"),
    ("trl.min_p", 2, "must be in [0, 1]"),
    ("vllm.port", 70000, "must be in [1, 65535]"),
    ("vllm.gpu_memory_utilization", 0, "must be in (0, 1]"),
    ("trl.use_vllm", "yes", "must be true or false"),
    ("trl.use_vllm", 1, "must be true or false"),
    ("bf16", "automatic", "must be true or false"),
    ("fp16", "auto", "must be true or false"),  # `auto` is bf16's alone
    ("trl.async_prefetch", "true", "must be true or false"),  # as trl.use_vllm: a real YAML bool
    ("trl.vllm_enable_sleep_mode", 1, "must be true or false"),
    ("use_trackio", "yes", "must be true or false"),
    ("trl", "x", "must be a mapping of keys"),
    ("trl", ["a"], "must be a mapping of keys"),
    ("datasets", {"path": "a"}, "must be a list, not a mapping"),
    ("datasets", "a.jsonl", "must be a list, not str"),
    ("trl.reward_weights", {1.0, 0.5}, "must be a list, not set"),  # a set's order is arbitrary
    ("trl.reward_funcs", [], "is empty: GRPO needs at least one reward"),
    ("trl.reward_funcs", 3, "must be a list, not int"),
    ("trl.reward_weights", [1, "0.5"], "every weight must be a finite number"),
    ("trl.reward_weights", [1, True], "every weight must be a finite number"),
    ("trl.reward_weights", [math.inf], "every weight must be a finite number"),
    ("trl.reward_weights", "1.0", "must be a list, not str"),
])
def test_a_wrong_value_says_what_is_wrong(key, value, message):
    (problem,) = problems(at(key, value))
    assert (problem.key, problem.message) == (key, message + ".")


def test_problems_name_key_value_and_fix():
    cfg = {"micro_batch_size": 0, "trl": {"num_generations": "many", "top_p": 0.9}, "bf16": "auto"}
    found = {p.key: p for p in problems(cfg)}
    assert set(found) == {"micro_batch_size", "trl.num_generations"}
    assert found["micro_batch_size"].value == 0
    assert found["trl.num_generations"].value == "many"
    assert found["trl.num_generations"].line() == (
        "trl.num_generations = 'many': must be an integer. Fix: set it to 2 or more (8-16 is usual): GRPO needs "
        "at least 2 completions per prompt to compute an advantage.")


def test_unset_reads_as_the_default_and_a_wrong_value_is_never_read():
    run = read_run({"micro_batch_size": "8", "max_steps": None})
    assert run.micro_batch_size == 8 and run.gradient_accumulation_steps == 1 and run.max_steps is None
    assert [p.key for p in problems({"trl": {"top_k": -1}, "vllm": "not a section", "micro_batch_size": 0})] == [
        "trl.top_k", "vllm", "micro_batch_size"]  # every wrong value at once, never a zero read as unset


@pytest.mark.parametrize("cfg, on_keys, half", [
    ({"bf16": True}, [], True), ({"bf16": "auto"}, [], True), ({"fp16": True}, ["fp16"], True),
    ({"bf16": False, "fp16": False}, [], False),
    ({"trl": {"async_prefetch": True, "use_data_producer": False}}, ["trl.async_prefetch"], False),
    ({"use_trackio": True}, ["use_trackio"], False),
])
def test_switches_and_half_precision_read_through_the_one_reader(cfg, on_keys, half):
    run = read_run(cfg)
    switches = {"trl.async_prefetch": run.trl.async_prefetch, "trl.use_data_producer": run.trl.use_data_producer,
                "trl.vllm_enable_sleep_mode": run.trl.vllm_enable_sleep_mode, "use_trackio": run.use_trackio,
                "fp16": run.fp16}
    assert [k for k, on in switches.items() if on is True] == on_keys
    assert run.half_precision is half


@pytest.mark.parametrize("section, key, message", [
    # a key inside a section that may also be `true`/`false`: named whole, not as the section
    ({"doctor": {"truncation": 2}}, "grpo_plugin.doctor.truncation", "must be in (0, 1]"),
    ({"doctor": {"entropy_ratio": 1}}, "grpo_plugin.doctor.entropy_ratio", "must be in (0, 1)"),
    ({"doctor": {"zero_grad": "x"}}, "grpo_plugin.doctor.zero_grad", "must be a number"),
    ({"keep_best": {"mode": "up"}}, "grpo_plugin.keep_best.mode", "must be 'max' or 'min'"),
    ({"weight_sync_guard": 3}, "grpo_plugin.weight_sync_guard", "must be a mapping of keys, or true or false"),
    ({"cpu_bf16": "maybe"}, "grpo_plugin.cpu_bf16", "must be true or false, or 'auto'"),
    # on/off keys read as strictly as the Run's (`trl.use_vllm`): a quoted word is not a switch
    ({"vllm_autostart": "yes"}, "grpo_plugin.vllm_autostart", "must be true or false"),
    ({"rollout_log": "no"}, "grpo_plugin.rollout_log", "must be true or false"),
    ({"doctor": {"stop": 1}}, "grpo_plugin.doctor.stop", "must be true or false"),
    ({"max_tool_calls": -1}, "grpo_plugin.max_tool_calls", "must be >= 0"),
    ({"tools": "calculator"}, "grpo_plugin.tools", "must be a list, not str"),
    ({"remote_rewards": DictDefault({"name": "a"})}, "grpo_plugin.remote_rewards", "must be a list, not a mapping"),
    ({"vllm_gpus": [0, -1]}, "grpo_plugin.vllm_gpus", "each entry must be >= 0"),
    ({"eval_every": {}}, "grpo_plugin.eval_every.steps", "is required"),
    ({"remote_rewards": [{"name": "a", "kind": "jud"}]}, "grpo_plugin.remote_rewards[0].kind",
     "must be 'judge' or 'http'"),
    ({"remote_rewards": [{"name": "a", "kind": "judge", "score": {"min": "q"}}]},
     "grpo_plugin.remote_rewards[0].score.min", "must be a number"),
])
def test_a_wrong_plugin_value_is_named_by_its_whole_key_in_the_words_of_every_key(section, key, message):
    (problem,) = problems({"grpo_plugin": section})
    assert (problem.key, problem.message) == (key, message + ".")


def test_a_plugin_fix_gives_the_default_and_a_nested_unknown_key_the_closest_known_one():
    (problem,) = problems({"grpo_plugin": {"doctor": {"truncation": 2}}})
    assert "default, 0.9" in problem.fix and "docs/observe.md" in problem.fix  # the doctor's page
    (problem,) = problems({"grpo_plugin": {"max_tool_calls": -1}})
    assert "default, 8" in problem.fix and "docs/plugin-keys.md" in problem.fix
    (problem,) = problems({"grpo_plugin": {"doctor": {"truncaton": 0.5}}})
    assert (problem.key, problem.fix) == ("grpo_plugin.doctor.truncaton", "did you mean `truncation`?")
    assert problem.line().endswith("Fix: did you mean `truncation`?")


_NAMES = st.text("abcdefgst_", max_size=8)  # yaml keys (a name with `.` or `[` would read as a path)
_JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=3),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=3),
                        max_leaves=8)
_PLUGIN_KEYS = st.sampled_from(sorted(GRPOPluginSettings.model_fields))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_PLUGIN_KEYS, _JSONISH | st.dictionaries(st.sampled_from(
    ["steps", "truncation", "metric", "mode", "threshold", "stop", "split", "limit", "name", "kind"]), _JSONISH,
    max_size=3), max_size=4))
def test_any_plugin_section_reads_or_names_wrong_keys_that_exist(section):
    """Whatever the yaml holds, `read_run` answers with a Run or Problems (never another exception),
    and each Problem's key is a path through the schema: field names and list indices (the last name
    may be an unknown key, said so), never a pydantic union tag such as `DoctorSettings`."""
    try:
        read_run({"grpo_plugin": section})
    except GRPOConfigError as err:
        for problem in err.problems:
            head, *parts = [int(i) if i else name for name, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", problem.key)]
            model, written = GRPOPluginSettings, section
            for i, part in enumerate(parts):
                unknown = i == len(parts) - 1 and problem.message.startswith("is not a key of")
                if isinstance(part, str):  # a schema key, or one the yaml holds there
                    assert part in (written if unknown else model.model_fields), problem.key
                    model = None if unknown else _model_in(model.model_fields[part].annotation)
                written = written.get(part) if isinstance(written, dict) else written[part]  # (a list's entry)
            assert head == "grpo_plugin" and problem.message.endswith(".") and problem.fix, problem


def test_every_page_a_plugin_fix_points_at_exists():
    """Each settings section names its page (`DOC`); the keys' table moved out of the README once,
    and every fix kept pointing at a README section that was gone."""
    from pathlib import Path

    from axolotl_grpo_plugin.config import args

    repo = Path(__file__).resolve().parents[1]
    sections = [m for m in vars(args).values() if isinstance(m, type) and issubclass(m, args.BaseModel)
                and m.__module__ == args.__name__ and m not in (args.GRPOPluginArgs, args.CPUThreadsPluginArgs)]
    assert len(sections) >= 7 and all((repo / m.DOC).is_file() for m in sections), {m.__name__: m.DOC for m in sections}


# Issue 64: Axolotl's keys the Run reads are typed as Axolotl's schema types them, and read as it reads them.
AXOLOTL_SAMPLES = {
    str: ["qwen_25", 3, 2.5, True, ["a"], {"a": 1}],
    bool: [True, False, "true", "no", "on", 1, 0, "maybe", 2, None],
    int: [8, "8", 8.0, 8.5, "eight", True, 0, -1],
    float: [0.05, "0.05", 0, 1, "high", True, -0.1],
}
AXOLOTL_KEYS = {
    "adapter": str, "trackio_project_name": str, "base_model_config": str, "tokenizer_config": str,
    "tokenizer_type": str, "revision_of_model": str, "chat_template_jinja": str, "default_system_message": str,
    "resume_from_checkpoint": str, "attn_implementation": str, "optimizer": str, "chat_template": str,
    "load_in_4bit": bool, "load_in_8bit": bool, "tokenizer_use_fast": bool, "tokenizer_legacy": bool,
    "trust_remote_code": bool, "auto_resume_from_checkpoints": bool, "lora_target_linear": bool,
    "flash_attention": bool, "sdp_attention": bool, "flex_attention": bool,
    "sequence_len": int, "fsdp_version": int, "lora_r": int, "lora_dropout": float,
    "deepspeed": None, "fsdp": None, "fsdp_config": None, "special_tokens": None, "tokens": None,
    "gradient_checkpointing": None, "lora_target_modules": None,
}
OTHER_SAMPLES = {
    "deepspeed": ["zero2.json", {"zero_optimization": {"stage": 2}}, 3, ["zero2.json"]],
    "fsdp": [["full_shard", "auto_wrap"], ("full_shard",), "full_shard", [1]],
    "fsdp_config": [{"fsdp_version": 2, "reshard_after_forward": True}, "x", [1]],
    "special_tokens": [{"pad_token": "<pad>"}, "<pad>", ["<pad>"]],
    "tokens": [["<a>", "<b>"], "<a>", [1]],
    "gradient_checkpointing": [True, False, "offload", "offload_disk", "true", "unsloth", 2],
    "lora_target_modules": ["q_proj", ["q_proj", "v_proj"], 3, [3]],
}


def _axolotl_cases():
    for key, kind in AXOLOTL_KEYS.items():
        for value in OTHER_SAMPLES[key] if kind is None else AXOLOTL_SAMPLES[kind]:
            yield pytest.param(key, value, id=f"{key}={value!r}")


def _plain(value):
    value = getattr(value, "value", value)  # Axolotl's enums (chat_template, optimizer)
    return value.model_dump(exclude_unset=True) if hasattr(value, "model_dump") else value


def test_every_run_field_is_typed():
    from typing import Any

    from axolotl_grpo_plugin.config.run import Run, Trl, Vllm

    untyped = [f"{model.__name__}.{name}" for model in (Run, Trl, Vllm)
               for name, field in model.model_fields.items() if field.annotation is Any]
    assert untyped == []
    assert set(AXOLOTL_KEYS) <= set(Run.model_fields)


@pytest.mark.parametrize("key, value", list(_axolotl_cases()))
def test_an_axolotl_key_reads_as_axolotls_schema_reads_it(key, value):
    """A value Axolotl's own field accepts reads the same here (a bool is never a number: the module's rule);
    one it refuses is refused here too, or read as written (a chat_template name Axolotl lacks: its to say)."""
    from axolotl.utils.schemas.config import AxolotlInputConfig
    from pydantic import TypeAdapter, ValidationError

    try:
        theirs = TypeAdapter(AxolotlInputConfig.model_fields[key].annotation).validate_python(value)
    except ValidationError:
        theirs = ValidationError
    try:
        ours = read(key, value)
    except GRPOConfigError as exc:
        (problem,) = exc.problems
        assert problem.key == key and problem.fix, problem
        assert theirs is ValidationError or (isinstance(value, bool) and AXOLOTL_KEYS[key] in (int, float)), \
            f"Axolotl reads {value!r} as {theirs!r}; the Run refuses it: {problem.line()}"
        return
    if theirs is not ValidationError:
        assert ours == _plain(theirs) and type(ours) is type(_plain(theirs))


@pytest.mark.parametrize("key, value, message", [
    ("load_in_4bit", "maybe", "must be true or false"),
    ("trust_remote_code", 2, "must be true or false"),
    ("lora_r", "four", "must be an integer"),
    ("lora_r", True, "must be an integer"),
    ("lora_dropout", "high", "must be a number"),
    ("adapter", 1, "must be a string"),
    ("deepspeed", 3, "must be a string, or a mapping of keys"),
    ("fsdp", "full_shard", "must be a list, not str"),
    ("fsdp_config", [1], "must be a mapping of keys"),
    ("tokens", [1], "each entry must be a string"),
    ("gradient_checkpointing", "unsloth", "must be true, false, offload or offload_disk"),
    ("lora_target_modules", 3, "must be a string, or a list, not int"),
])
def test_a_wrong_axolotl_value_says_what_is_wrong(key, value, message):
    (problem,) = problems(at(key, value))
    assert (problem.key, problem.value, problem.message) == (key, value, message + ".")
