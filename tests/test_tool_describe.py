"""Tools TRL cannot describe, and chat templates it cannot parse tool calls from (issue 49, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
