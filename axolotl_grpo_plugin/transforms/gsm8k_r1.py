"""GSM8K train rows -> supervised R1-format conversations: the cold start before GRPO.

A base model that never writes `<reasoning>/<answer>` gives every GRPO completion the same
format reward (zero), so there is nothing to learn from; R1 started from a short supervised
stage for that reason (docs/real-model.md). Each row becomes the GRPO prompt (the cookbook
system prompt and the question, exactly as the `gsm8k` transform builds it) and the reply
`<reasoning>\\n...\\n</reasoning>\\n<answer>\\nN\\n</answer>`: the solution text with its
`<<48/2=24>>` calculator annotations removed, and the number after `####`.

Two entries: `rows(cfg, dataset_idx)` is the registered loader (name `gsm8k_r1`, the
registry's convention: the row function and map options); `load(tokenizer, cfg, ds_cfg)` is
what Axolotl's SFT loader calls for `type: axolotl_grpo_plugin.transforms.gsm8k_r1`: its
`chat_template` strategy over those conversations, training on the assistant turn only.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from ..config.run import read_plugin
from .common import SYSTEM_PROMPT_ROLE
from .gsm8k import SHAPES, GSM8KRowError, build_prompt, final_answer


CALCULATOR = re.compile(r"<<[^<>]*>>")


def reasoning(solution: str) -> str:
    """The worked solution before `####`, without calculator annotations."""
    steps = CALCULATOR.sub("", str(solution).rsplit("####", 1)[0])
    return "\n".join(line.rstrip() for line in steps.strip().splitlines() if line.strip())


def reply(solution: str) -> str:
    return f"<reasoning>\n{reasoning(solution)}\n</reasoning>\n<answer>\n{final_answer(solution)}\n</answer>"


def transform_row(row: dict, system_prompt_role: Literal["user", "system"] = SYSTEM_PROMPT_ROLE) -> dict:
    """One `openai/gsm8k` row (question + worked answer) -> `{"messages": [...]}`."""
    question_col, answer_col = SHAPES["openai/gsm8k"]
    if question_col not in row or answer_col not in row or "####" not in str(row[answer_col]):
        raise GSM8KRowError(f"gsm8k_r1 transform: row has columns {sorted(row)}; expected {question_col!r} and "
                            f"{answer_col!r} with a worked solution ending in `#### N`, as in openai/gsm8k "
                            "(the cold start needs the solutions, which skrishna/gsm8k_only_answer lacks)")
    prompt = build_prompt(str(row[question_col]), system_prompt_role)
    return {"messages": [*prompt, {"role": "assistant", "content": reply(row[answer_col])}]}


def rows(cfg: Any = None, dataset_idx: int = 0, **kwargs: Any):
    """The registered loader: the row function (honouring `grpo_plugin.system_prompt_role`)."""
    role = read_plugin(cfg).system_prompt_role
    return (lambda row: transform_row(row, system_prompt_role=role)), {"remove_columns": "__all__"}


def load(tokenizer, cfg, ds_cfg: dict | None = None, processor=None):
    """Axolotl's SFT strategy for `type: axolotl_grpo_plugin.transforms.gsm8k_r1`."""
    return sft_strategy(tokenizer, cfg, ds_cfg, processor, rows(cfg)[0])


def sft_strategy(tokenizer, cfg, ds_cfg: dict | None, processor, to_messages):
    """Axolotl's `chat_template` strategy over the conversations `to_messages(row)` makes (a
    `messages` column, and `tools` when the row has one), training on the assistant turns only."""
    from axolotl.prompt_strategies.chat_template import load as chat_template

    options = dict(ds_cfg or {})
    options.update(type="chat_template", field_messages="messages", roles_to_train=["assistant"])
    strategy = chat_template(tokenizer, cfg, options, processor=processor)
    tokenize = strategy.tokenize_prompt

    def tokenize_prompt(prompt: dict) -> dict:
        first = next(iter(prompt.values()), None)
        if isinstance(first, list):  # a batch: columns of values
            batch = [to_messages(dict(zip(prompt, values))) for values in zip(*prompt.values())]
            return tokenize({key: [row[key] for row in batch] for key in batch[0]})
        return tokenize(to_messages(prompt))

    strategy.tokenize_prompt = tokenize_prompt
    return strategy
