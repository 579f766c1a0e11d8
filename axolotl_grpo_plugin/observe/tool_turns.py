"""What a tool-using rollout did: its calls (name, arguments, result) and its final answer.

TRL logs a tool rollout's completion as one decoded text of every turn (the calls, the tool
results, the answer), with the role markers stripped, and passes the rewards the messages, which
they read by their last assistant turn. `capture` wraps the trainer's `_tool_call_loop` (sync
trainer, this process) and keeps, per local rollout of the batch being generated, the calls
paired with the tool turns that answered them and the last assistant text, so the rollout log can
record the calls (with each call's seconds) and the learning metrics judge the format of the
answer the rewards score; each batch also logs `tools/masked_fraction`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from axolotl_grpo_rewards.text import completion_text

from ..tools.containment import call_key


MAX_RESULT_CHARS = 2000  # of a tool result kept in the rollout log
MASKED = "tools/masked_fraction"  # metric: the share of completion tokens that are tool results


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


def masked_fraction(tool_mask: list[list[int]]) -> float:
    """The share of completion tokens that are tool results (mask 0: they carry no loss)."""
    total = sum(len(mask) for mask in tool_mask)
    return sum(len(mask) - sum(mask) for mask in tool_mask) / total if total else 0.0


def add_seconds(batch: list[dict], tools: list) -> None:
    """Each recorded call gets the seconds its contained tool took (`seconds`), paired by name and
    arguments; a call the containment never saw (an unknown tool name) gets none."""
    seconds = {getattr(t, "__name__", "?"): t.tool_stats.take_seconds() for t in tools if hasattr(t, "tool_stats")}
    for rollout in batch:
        for call in rollout["tool_calls"]:
            queue = seconds.get(call["name"], {}).get(call_key(call["arguments"]))
            if queue:
                call["seconds"] = round(queue.popleft(), 6)


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
            tool_mask, completions = result[0], result[1]
            turns.batch = [turns_of(messages) for messages in completions]
            add_seconds(turns.batch, trainer.tools)
            mode = "train" if getattr(trainer.model, "training", True) else "eval"
            trainer._metrics[mode][MASKED].append(masked_fraction(tool_mask))
        except Exception:  # observing never stops training
            turns.batch = None
        return result

    trainer._tool_call_loop = tool_call_loop
    return turns
