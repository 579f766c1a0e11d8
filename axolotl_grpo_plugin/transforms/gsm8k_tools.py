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

Two layouts. `gsm8k_tools` puts every call before any text, so the model must choose each
expression before it has written a word of the solution. `gsm8k_tools_interleaved`
(`interleave=True`) writes the solution as it goes: each call's turn carries the solution's text up
to its mark (`Natalia sold 48/2 =`, then the call), the next turn goes on from the value the tool
answered, and the R1 reply closes the conversation with the text after the last call as its
reasoning (the turns before it said the rest; repeating it would cost a GRPO completion ~80 tokens).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from axolotl_grpo_rewards.tools import calculator

from ..config.run import read_plugin
from .common import SYSTEM_PROMPT_ROLE
from .gsm8k import SHAPES, GSM8KRowError, build_prompt, final_answer
from .gsm8k_r1 import reply, sft_strategy


MARK = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
TOOL = "calculator"


@lru_cache(maxsize=1)
def tool_schemas() -> list[dict]:
    """The calculator's JSON schema, as TRL renders it into the prompt."""
    from transformers.utils import get_json_schema

    return [get_json_schema(calculator)]


def tool_turns(solution: str, interleave: bool = False) -> tuple[list[dict], str]:
    """One assistant call and one tool answer per calculator mark, in the solution's order, and the
    solution's text after the last call; with `interleave`, each call's turn first says the text
    since the previous call."""
    body = str(solution).rsplit("####", 1)[0]
    turns, said, start = [], "", 0
    for mark in MARK.finditer(body):
        said, start = said + body[start:mark.start()], mark.end()
        expression = mark.group(1).strip()
        result = calculator(expression)
        if not expression or result.startswith("error:"):
            continue
        call = {"type": "function", "function": {"name": TOOL, "arguments": {"expression": expression}}}
        turns += [{"role": "assistant", "content": said.strip() if interleave else "", "tool_calls": [call]},
                  {"role": "tool", "name": TOOL, "content": result}]
        said = ""
    return turns, said + body[start:]


def transform_row(row: dict, system_prompt_role: Literal["user", "system"] = SYSTEM_PROMPT_ROLE,
                  interleave: bool = False) -> dict:
    """One `openai/gsm8k` row -> `{"messages": [...], "tools": [calculator's schema]}`. Interleaved,
    the reply's reasoning is the text after the last call: the turns before it said the rest."""
    question_col, answer_col = SHAPES["openai/gsm8k"]
    if question_col not in row or answer_col not in row or "####" not in str(row[answer_col]):
        raise GSM8KRowError(f"gsm8k_tools transform: row has columns {sorted(row)}; expected {question_col!r} and "
                            f"{answer_col!r} with a worked solution ending in `#### N`, as in openai/gsm8k")
    solution = str(row[answer_col])
    turns, rest = tool_turns(solution, interleave)
    last = reply(f"{rest}\n#### {final_answer(solution)}" if interleave and turns else solution)
    messages = [*build_prompt(str(row[question_col]), system_prompt_role), *turns,
                {"role": "assistant", "content": last}]
    return {"messages": messages, "tools": tool_schemas()}


def rows(cfg: Any = None, dataset_idx: int = 0, interleave: bool = False, **kwargs: Any):
    """The registered loader: the row function (honouring `grpo_plugin.system_prompt_role`)."""
    role = read_plugin(cfg).system_prompt_role
    return (lambda row: transform_row(row, role, interleave)), {"remove_columns": "__all__"}


def load(tokenizer, cfg, ds_cfg: dict | None = None, processor=None):
    """Axolotl's SFT strategy for `type: axolotl_grpo_plugin.transforms.gsm8k_tools`."""
    return sft_strategy(tokenizer, cfg, ds_cfg, processor, rows(cfg)[0])
