"""Tools TRL cannot describe, and chat templates it cannot parse tool calls from (issue 49, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import prepared

from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.tools.describe import schema_problem, template_problem
from axolotl_grpo_rewards.tools import calculator


SHARED_QWEN = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "qwen2.5-instruct"


def undocumented(expression: str) -> str:
    return expression


def untyped(expression):
    """Returns it.

    Args:
        expression: Anything.
    """
    return expression


def test_the_calculator_is_describable():
    assert schema_problem(calculator) is None


@pytest.mark.parametrize("tool, said", [(undocumented, "DocstringParsingException"),
                                        (untyped, "TypeHintParsingException")])
def test_a_tool_without_hints_or_docstring_is_refused_with_the_fix(tool, said):
    why, fix = schema_problem(tool)
    assert why.startswith(f"TRL cannot build the JSON schema of `{tool.__name__}` ({said}")
    assert "type hint" in fix and "Args:" in fix


def test_a_template_trl_does_not_know_is_refused_with_the_fix():
    from axolotl_grpo_plugin.embedded.tokenizer import build_tokenizer

    why, fix = template_problem(build_tokenizer())  # plain ChatML, no tool syntax
    assert why.startswith("TRL cannot parse tool calls from this chat template") and "qwen_25" in fix


@pytest.mark.skipif(not SHARED_QWEN.exists(), reason="../shared/tokenizers/qwen2.5-instruct is absent")
def test_qwen25s_own_template_is_parsed():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(SHARED_QWEN))
    assert template_problem(tokenizer) is None
    parsed = tokenizer.parse_response('<tool_call>\n{"name": "calculator", "arguments": {"expression": "48/2"}}\n'
                                      '</tool_call><|im_end|>', prefix="")
    assert parsed["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "48/2"}}


def test_a_missing_jmespath_or_an_old_transformers_is_named_before_the_model_loads(monkeypatch):
    import importlib.metadata
    import importlib.util

    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.tools import loader

    run = read_run({"rl": "grpo", "grpo_plugin": {"tools": ["calculator"]}})
    assert loader.library_problems(run) == []  # this environment has both
    real_find_spec, real_version = importlib.util.find_spec, importlib.metadata.version
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jmespath" else real_find_spec(name, *a))
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "4.57.1" if name == "transformers" else real_version(name))
    missing, old = loader.library_problems(run)
    assert missing.key == "grpo_plugin.tools" and "jmespath" in missing.message and "pip install jmespath" in missing.fix
    assert "transformers 5.0.0 or newer" in old.message and "4.57.1" in old.message
    env = read_run({"rl": "grpo", "grpo_plugin": {"environment": "my_env.Shop"}})
    assert "5.2.0" in loader.library_problems(env)[-1].message


def test_async_generation_on_several_processes_would_skip_the_tool_loop():
    from axolotl_grpo_plugin.check.tools import check_tools_async
    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.system.launch import Launch

    run = read_run({"rl": "grpo", "trl": {"async_prefetch": True}, "grpo_plugin": {"tools": ["calculator"]}})
    (problem,) = check_tools_async(run, Launch(2, True))
    assert problem.key == "trl.async_prefetch" and "without TRL's tool loop" in problem.message
    assert "remove `trl.async_prefetch`" in problem.fix
    assert check_tools_async(run, Launch(1, True)) == []  # one process: the loop runs in its thread
    no_tools = read_run({"rl": "grpo", "trl": {"async_prefetch": True}})
    assert check_tools_async(no_tools, Launch(2, True)) == []


def test_a_completion_too_short_for_one_tool_round_is_refused(embedded_model_dir, monkeypatch):
    from axolotl_grpo_plugin.check.tools import MIN_ANSWER_TOKENS, check_tool_room
    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.seqstats import api
    from axolotl_grpo_plugin.system.launch import Launch

    def run(completion, **plugin):
        return read_run({"rl": "grpo", "base_model": str(embedded_model_dir), "chat_template": "qwen_25",
                         "trl": {"max_completion_length": completion}, "grpo_plugin": plugin})

    tools = {"tools": ["calculator"]}
    round_tokens = api.tool_round_tokens(run(512, **tools))
    assert round_tokens is not None and round_tokens > 10  # the call's JSON, the tool turn, two headers
    need = round_tokens + MIN_ANSWER_TOKENS
    (problem,) = check_tool_room(run(need - 1, **tools), Launch(1, False))
    assert problem.key == "trl.max_completion_length" and problem.value == need - 1
    assert f"`trl.max_completion_length: {need}`" in problem.fix
    assert check_tool_room(run(need, **tools), Launch(1, False)) == []
    assert check_tool_room(run(8), Launch(1, False)) == []  # no tools: nothing to hold
    assert api.tool_round_tokens(read_run({"rl": "grpo", "base_model": "Org/not-local", "grpo_plugin": tools})) is None

    # the fast counter and transformers' own apply_chat_template count the same round
    fast, _, name = api._tokenizers(run(512, **tools), "base_model", str(embedded_model_dir), "fast")
    tok, _ = api._hf_tokenizer(run(512, **tools), "base_model", str(embedded_model_dir))
    assert fast is not None and tok.chat_template is not None
    monkeypatch.setattr(api, "_tokenizers", lambda *a: (None, tok, name))
    assert api.tool_round_tokens(run(512, **tools)) == round_tokens


def test_check_looks_the_tools_up_once(embedded_model_dir, monkeypatch):
    """`check` imports and describes the tools once (check_tools): the tool-room check that runs after
    it reuses that answer instead of running `tools.loader.problems` again."""
    from axolotl_grpo_plugin.system.launch import Launch
    from axolotl_grpo_plugin.tools import loader

    calls, real = [], loader.problems
    monkeypatch.setattr(loader, "problems", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = {"rl": "grpo", "base_model": str(embedded_model_dir), "chat_template": "qwen_25", "bf16": False,
           "micro_batch_size": 4, "trl": {"num_generations": 4, "max_completion_length": 8,
                                          "reward_funcs": ["correctness"]},
           "grpo_plugin": {"tools": ["calculator"]}}
    with pytest.raises(GRPOConfigError) as err:
        prepared(cfg, Launch(1, False))
    assert [p.key for p in err.value.problems] == ["trl.max_completion_length"]  # the tool-room check ran
    assert len(calls) == 1
    calls.clear()
    cfg["grpo_plugin"]["tools"] = ["no_such_tool"]
    with pytest.raises(GRPOConfigError) as err:
        prepared(cfg, Launch(1, False))
    assert [p.key for p in err.value.problems] == ["grpo_plugin.tools[0]"] and len(calls) == 1  # reported once
