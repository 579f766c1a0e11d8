"""What a tool-using rollout did: its calls (name, arguments, result) and its final answer.

TRL logs a tool rollout's completion as one decoded text of every turn (the calls, the tool
results, the answer), with the role markers stripped, and passes the rewards the messages, which
they read by their last assistant turn. `capture` wraps the trainer's `_tool_call_loop` (this
process; in Axolotl's async trainer, its generation thread) and keeps, per local rollout, found
again by its completion ids, the calls paired with the tool turns that answered them and the last
assistant text, so the rollout log can record the calls (with each call's seconds) and the learning
metrics judge the format of the answer the rewards score; each batch also logs
`tools/masked_fraction`.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict, deque
from typing import Any

from axolotl_grpo_rewards.text import completion_text

from ..tools.containment import call_key


MAX_RESULT_CHARS = 2000  # of a tool result (and of its arguments) kept in the rollout log
MAX_ARGUMENT_DEPTH = 32  # lists and mappings nested deeper are kept as text
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
    """The arguments as the rollout log can hold them: as written when they are plain JSON of a
    sane size and depth, else a bounded text of them (the model's arguments must not cost the
    step's records: the log drops a step it cannot serialise)."""
    if _depth(arguments, MAX_ARGUMENT_DEPTH + 1) <= MAX_ARGUMENT_DEPTH:
        try:
            if len(json.dumps(arguments)) <= MAX_RESULT_CHARS:
                return arguments
        except Exception:  # not JSON, an int too long to print, ...
            pass
    try:
        return repr(arguments)[:MAX_RESULT_CHARS]
    except Exception:
        return f"<unprintable {type(arguments).__name__}>"


def _depth(value: Any, limit: int) -> int:
    """How deep lists and mappings nest in `value`, counted no further than `limit`."""
    if limit <= 0 or not isinstance(value, (list, tuple, dict)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(item, limit - 1) for item in items), default=0)


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
    """Recent rollouts' turns (this process), found again by their completion token ids: Axolotl's
    async trainer generates the next batch in a thread while this one is scored, so the order in
    which batches are generated and scored differs; the ids tell them apart."""

    MAX_KEPT = 4096  # rollouts; older ones (never scored: a batch dropped) are forgotten

    def __init__(self):
        self._by_ids: OrderedDict[tuple, deque] = OrderedDict()
        self._kept = 0
        self._lock = threading.Lock()

    def put(self, completion_ids: list[list[int]], batch: list[dict]) -> None:
        with self._lock:
            for ids, turns in zip(completion_ids, batch, strict=True):
                self._by_ids.setdefault(tuple(ids), deque()).append(turns)
                self._kept += 1
            while self._kept > self.MAX_KEPT:
                _, oldest = self._by_ids.popitem(last=False)
                self._kept -= len(oldest)

    def take(self, completion_ids: list[list[int]]) -> list[dict | None]:
        """The turns of each completion (its unpadded ids), None for one not seen; each once."""
        out = []
        with self._lock:
            for ids in completion_ids:
                queue = self._by_ids.get(tuple(ids))
                out.append(queue.popleft() if queue else None)
                if queue is not None and not queue:
                    del self._by_ids[tuple(ids)]
                self._kept -= out[-1] is not None
        return out


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
            tool_mask, completions, completion_ids = result[0], result[1], result[2]
            batch = [turns_of(messages) for messages in completions]
            add_seconds(batch, trainer.tools)
            turns.put(completion_ids, batch)
            mode = "train" if getattr(trainer.model, "training", True) else "eval"
            trainer._metrics[mode][MASKED].append(masked_fraction(tool_mask))
        except Exception:  # observing never stops training: the rollouts are logged without their calls
            pass
        return result

    trainer._tool_call_loop = tool_call_loop
    return turns
