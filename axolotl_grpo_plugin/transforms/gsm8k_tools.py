"""GSM8K train rows -> supervised conversations that call the calculator: the tool cold start.

Every GSM8K solution marks its arithmetic, `48/2 = <<48/2=24>>24`. Here each mark becomes an
assistant turn that calls the built-in calculator (`{"expression": "48/2"}`) and the tool turn
with what the calculator answers, in order; the last assistant turn is the R1 reply of the
`gsm8k_r1` cold start (the solution without its marks, then the number after `####`). The rows
carry the calculator's JSON schema in a `tools` column, so the chat template renders the same
tool block TRL puts in every GRPO prompt with `grpo_plugin.tools: [calculator]`, and the model
learns the call syntax the template's parser reads back (`chat_template: qwen_25`). The GRPO
stage uses the plain `gsm8k` transform: TRL adds the tools to its prompts.

A mark whose expression the calculator refuses is left out (the reply still states its value).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from axolotl_grpo_rewards.tools import calculator

from ..config.run import read_plugin
from .gsm8k import SHAPES, GSM8KRowError, build_prompt
from .gsm8k_r1 import reply, sft_strategy


MARK = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
TOOL = "calculator"


@lru_cache(maxsize=1)
def tool_schemas() -> list[dict]:
    """The calculator's JSON schema, as TRL renders it into the prompt."""
    from transformers.utils import get_json_schema

    return [get_json_schema(calculator)]


def tool_turns(solution: str) -> list[dict]:
    """One assistant call and one tool answer per calculator mark, in the solution's order."""
    turns = []
    for expression, _ in MARK.findall(str(solution).rsplit("####", 1)[0]):
        expression = expression.strip()
        result = calculator(expression)
        if not expression or result.startswith("error:"):
            continue
        call = {"type": "function", "function": {"name": TOOL, "arguments": {"expression": expression}}}
        turns += [{"role": "assistant", "content": "", "tool_calls": [call]},
                  {"role": "tool", "name": TOOL, "content": result}]
    return turns


def transform_row(row: dict, system_prompt_role: Literal["user", "system"] = "user") -> dict:
    """One `openai/gsm8k` row -> `{"messages": [...], "tools": [calculator's schema]}`."""
    question_col, answer_col = SHAPES["openai/gsm8k"]
    if question_col not in row or answer_col not in row or "####" not in str(row[answer_col]):
        raise GSM8KRowError(f"gsm8k_tools transform: row has columns {sorted(row)}; expected {question_col!r} and "
                            f"{answer_col!r} with a worked solution ending in `#### N`, as in openai/gsm8k")
    solution = str(row[answer_col])
    messages = [*build_prompt(str(row[question_col]), system_prompt_role), *tool_turns(solution),
                {"role": "assistant", "content": reply(solution)}]
    return {"messages": messages, "tools": tool_schemas()}


def rows(cfg: Any = None, dataset_idx: int = 0, **kwargs: Any):
    """The registered loader: the row function (honouring `grpo_plugin.system_prompt_role`)."""
    role = read_plugin(cfg).system_prompt_role
    return (lambda row: transform_row(row, system_prompt_role=role)), {"remove_columns": "__all__"}


def load(tokenizer, cfg, ds_cfg: dict | None = None, processor=None):
    """Axolotl's SFT strategy for `type: axolotl_grpo_plugin.transforms.gsm8k_tools`."""
    return sft_strategy(tokenizer, cfg, ds_cfg, processor, rows(cfg)[0])
