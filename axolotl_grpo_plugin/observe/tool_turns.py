"""What a tool-using rollout did: its calls (name, arguments, result) and its final answer.

TRL logs a tool rollout's completion as one decoded text of every turn (the calls, the tool
results, the answer), with the role markers stripped, and passes the rewards the messages, which
they read by their last assistant turn. `capture` wraps the trainer's `_tool_call_loop` (sync
trainer, this process) and keeps, per local rollout of the batch being generated, the calls
paired with the tool turns that answered them and the last assistant text, so the rollout log can
record the calls and the learning metrics judge the format of the answer the rewards score.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from axolotl_grpo_rewards.text import completion_text


MAX_RESULT_CHARS = 2000  # of a tool result kept in the rollout log


def turns_of(messages: Any) -> dict:
    """`{"tool_calls": [{"name", "arguments", "result"}], "final": text}` of one rollout's messages."""
    calls: list[dict] = []
    pending: list[dict] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            record = {"name": str(function.get("name", "?")), "arguments": _plain(function.get("arguments"))}
            calls.append(record)
            pending.append(record)
        if message.get("role") == "tool" and pending:
            pending.pop(0)["result"] = str(message.get("content", ""))[:MAX_RESULT_CHARS]
    return {"tool_calls": calls, "final": completion_text(messages)}


def _plain(arguments: Any) -> Any:
    try:
        json.dumps(arguments)
        return arguments
    except (TypeError, ValueError):
        return repr(arguments)[:500]


class ToolTurns:
    """The last generated batch's per-rollout turns (this process), or None outside tool runs."""

    def __init__(self):
        self.batch: list[dict] | None = None

    def take(self, count: int) -> list[dict | None]:
        batch, self.batch = self.batch, None
        return batch if batch is not None and len(batch) == count else [None] * count


def capture(trainer: Any) -> ToolTurns | None:
    """Wrap `_tool_call_loop` to keep each rollout's turns; None when the trainer has no tools."""
    loop = getattr(trainer, "_tool_call_loop", None)
    if not getattr(trainer, "tools", None) or not callable(loop):
        return None
    turns = ToolTurns()

    @functools.wraps(loop)
    def tool_call_loop(*args, **kwargs):
        result = loop(*args, **kwargs)
        try:
            turns.batch = [turns_of(messages) for messages in result[1]]  # (tool_mask, completions, ...)
        except Exception:  # observing never stops training
            turns.batch = None
        return result

    trainer._tool_call_loop = tool_call_loop
    return turns
