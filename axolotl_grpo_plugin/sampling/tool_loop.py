"""Evaluation with the run's tools: the loop TRL's GRPO trainer runs, around any generator.

With `grpo_plugin.tools`, a held-out answer is what the model writes after its tool calls, so
`evaluate` must run them as training does: render the prompt with the tools, parse each
completion with TRL's `parse_response` (the template's tool-call syntax), run the calls through
the same containment, append the tool turn the way TRL's `_get_tool_suffix_ids` renders it, and
generate again, at most `max_tool_calls` rounds. The scored text is the final assistant turn (what
the rewards read); each completion's calls are kept for the report: calls per answer, error rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..tools.containment import ERROR_TEXT


def run_tools(run: Any, tokenizer: Any) -> list[Callable]:
    """The run's tools, contained as in training (none without `grpo_plugin.tools`); with tools,
    `tokenizer` gets the chat template Axolotl installs, whose tool-call syntax the loop parses."""
    from ..tools import loader, trainer
    from .prompts import resolve_chat_template

    if not trainer.wanted(run):
        return []
    tools = loader.load(run)
    if tools and (template := resolve_chat_template(run, tokenizer)):
        tokenizer.chat_template = template
    return tools


@dataclass
class Rollout:
    """One completion's turns: token ids after the prompt, its calls, its final text."""

    prompt: list[int]
    ids: list[int]
    calls: list[dict] = field(default_factory=list)
    turn_starts: list[int] = field(default_factory=list)  # where each turn after a tool turn begins
    final: str | None = None  # set once its last turn is read (no calls left in it), else at the end


class ToolLoop:
    """A Generator (sampling/generation.py) whose completions went through the tool loop."""

    def __init__(self, inner: Any, tokenizer: Any, tools: Sequence[Callable], max_rounds: int):
        from trl.chat_template_utils import add_response_schema

        self.inner, self.tokenizer, self.max_rounds = inner, tokenizer, max_rounds
        self.by_name = {getattr(t, "__name__", "tool"): t for t in tools}
        self.name = f"{inner.name}+tools"
        if getattr(tokenizer, "response_template", None) is None and not getattr(tokenizer, "response_schema", None):
            add_response_schema(tokenizer)  # check refused a template TRL cannot parse
        self.last: list[list[Rollout]] = []  # the rollouts of the last generate call, for the report

    def generate(self, prompts: Sequence[list[int]], settings: Any, progress: Any = None) -> list[list[tuple]]:
        first = self.inner.generate(prompts, settings, progress)
        rollouts = [[Rollout(list(prompt), list(ids)) for _, ids in group] for prompt, group in zip(prompts, first)]
        pending = [r for group in rollouts for r in group]
        budget = settings.max_new_tokens  # the calls, the tool turns and the answer share it, as in TRL
        for _ in range(self.max_rounds):
            pending = [r for r in pending if self._answer_calls(r, budget)]
            if not pending:
                break
            room = budget - min(len(r.ids) for r in pending)
            more = self.inner.generate([r.prompt + r.ids for r in pending], replace(settings, n=1, max_new_tokens=room))
            for rollout, ((_, new_ids),) in zip(pending, more):
                rollout.ids += list(new_ids)[:budget - len(rollout.ids)]
        for rollout in (r for group in rollouts for r in group):
            if rollout.final is None:  # cut by the rounds or the budget while it still called tools
                rollout.final = self.final_text(rollout)
        self.last = rollouts
        return [[(r.final, r.ids) for r in group] for group in rollouts]

    def _answer_calls(self, rollout: Rollout, budget: int) -> bool:
        """Run the calls of the rollout's last turn and append their tool turn; False when it made
        none, or when the tool turn would leave no room in `budget` (TRL drops that turn too)."""
        from trl.chat_template_utils import parse_response

        turn_start = self._turn_start(rollout)
        if turn_start >= len(rollout.ids):
            rollout.final = ""
            return False
        message = parse_response(self.tokenizer, rollout.ids[turn_start:], prefix=rollout.prompt + rollout.ids[:turn_start])
        calls = message.get("tool_calls") or []
        if not calls:  # its last turn, read once: the rewards' text
            content = message.get("content")
            rollout.final = content if isinstance(content, str) else ""
            return False
        tool_messages = []
        for call in calls:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            name, arguments = function.get("name", "?"), function.get("arguments")
            tool = self.by_name.get(name)
            if tool is None:
                result: Any = {"error": f"Tool {name} not found."}
            elif not isinstance(arguments, dict):
                result = {"error": "the arguments are not a JSON object"}
            else:
                result = tool(**arguments)
            rollout.calls.append({"name": name, "arguments": arguments, "result": str(result),
                                  "error": isinstance(result, dict) or str(result).startswith(ERROR_TEXT)})
            tool_messages.append({"role": "tool", "name": name, "content": str(result)})
        suffix = self._tool_suffix(tool_messages)
        if len(rollout.ids) + len(suffix) >= budget:
            return False
        rollout.ids += suffix
        rollout.turn_starts.append(len(rollout.ids))
        return True

    @staticmethod
    def _turn_start(rollout: Rollout) -> int:
        return rollout.turn_starts[-1] if rollout.turn_starts else 0

    def final_text(self, rollout: Rollout, limit: int | None = None) -> str:
        """The last assistant turn's text, as the rewards read it (of the rollout's first `limit`
        tokens: what a shorter max_completion_length would have left)."""
        from trl.chat_template_utils import parse_response

        ids = rollout.ids if limit is None else rollout.ids[:limit]
        start = max([0, *(s for s in rollout.turn_starts if s <= len(ids))])
        if start >= len(ids):
            return ""
        message = parse_response(self.tokenizer, ids[start:], prefix=rollout.prompt + ids[:start])
        content = message.get("content")
        return content if isinstance(content, str) else ""

    def cut_text(self, prompt: int, completion: int, cut_ids: list[int]) -> str:
        """The final text of the last generate call's rollout (prompt, completion), cut to `cut_ids`."""
        return self.final_text(self.last[prompt][completion], len(cut_ids))

    def _tool_suffix(self, tool_messages: list[dict]) -> list[int]:
        """The ids of the tool turn and the next assistant header (TRL's _get_tool_suffix_ids)."""
        dummy = [{"role": "user", "content": "dummy"},
                 {"role": "assistant", "content": "", "tool_calls": [
                     {"type": "function", "function": {"name": tool_messages[0]["name"], "arguments": {}}}]}]
        prefix = self.tokenizer.apply_chat_template(dummy, add_generation_prompt=False, tokenize=True,
                                                    return_dict=False)
        full = self.tokenizer.apply_chat_template(dummy + tool_messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=False)
        return list(full[len(prefix):])


def tool_stats(rollouts: list[list[Rollout]]) -> dict[str, float]:
    """Calls per answer, the share of calls that failed, the share of answers with a call
    (`rollouts`: per prompt, its completions)."""
    flat = [r for group in rollouts for r in group]
    calls = [c for r in flat for c in r.calls]
    return {"tool_calls_per_answer": len(calls) / len(flat) if flat else 0.0,
            "tool_error_rate": sum(c["error"] for c in calls) / len(calls) if calls else 0.0,
            "answers_with_tool_calls": sum(bool(r.calls) for r in flat) / len(flat) if flat else 0.0}
