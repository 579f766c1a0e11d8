"""`evaluate` with grpo_plugin.tools (issue 49, item 6): the held-out answer is the one written
after the tool calls, run through the same loop and containment as training. The policy is
scripted (a stand-in generator): what is under test is the loop around it."""

from __future__ import annotations

import pytest

from axolotl_grpo_plugin.sampling.generation import SamplingSettings
from axolotl_grpo_plugin.sampling.tool_loop import ToolLoop, tool_stats
from axolotl_grpo_plugin.tools import contain
from axolotl_grpo_rewards.tools import calculator


ANSWER = "<reasoning>\nIt is 42.\n</reasoning>\n<answer>\n42\n</answer><|im_end|>"


def call(name="calculator", arguments='{"expression": "6*7"}'):
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call><|im_end|>'


@pytest.fixture(scope="module")
def tokenizer():
    from axolotl.utils.chat_templates import get_chat_template

    from axolotl_grpo_plugin.embedded.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tok.chat_template = get_chat_template("qwen_25")
    return tok


class Scripted:
    """Answers a prompt with a tool response in it with ANSWER, any other with `first`."""

    name = "scripted"

    def __init__(self, tokenizer, first):
        self.tokenizer, self.first, self.prompts = tokenizer, first, []

    def generate(self, prompts, settings, progress=None):
        out = []
        for prompt in prompts:
            text = self.tokenizer.decode(prompt)
            self.prompts.append(text)
            reply = ANSWER if "<tool_response>" in text else self.first
            ids = self.tokenizer.encode(reply, add_special_tokens=False)
            out.append([(reply, ids)] * settings.n)
        return out


def prompt_ids(tokenizer):
    messages = [{"role": "user", "content": "What is 6 times 7?"}]
    return tokenizer.apply_chat_template(messages, tools=[calculator], add_generation_prompt=True, return_dict=False)


def test_the_answer_after_the_call_is_the_one_scored(tokenizer):
    inner = Scripted(tokenizer, call())
    loop = ToolLoop(inner, tokenizer, [contain(calculator)], max_rounds=4)
    [[(text, ids)]] = loop.generate([prompt_ids(tokenizer)], SamplingSettings(n=1, max_new_tokens=400))
    assert text == "<reasoning>\nIt is 42.\n</reasoning>\n<answer>\n42\n</answer>"
    assert "<tool_response>\n42\n</tool_response>" in inner.prompts[-1]  # rendered as TRL renders it
    ((rollout,),) = loop.last
    assert rollout.calls == [{"name": "calculator", "arguments": {"expression": "6*7"}, "result": "42",
                              "error": False}]
    assert tool_stats(loop.last) == {"tool_calls_per_answer": 1.0, "tool_error_rate": 0.0,
                                     "answers_with_tool_calls": 1.0}


def test_an_unknown_tool_is_an_error_result_and_the_model_goes_on(tokenizer):
    loop = ToolLoop(Scripted(tokenizer, call(name="search")), tokenizer, [contain(calculator)], max_rounds=2)
    [[(text, _)]] = loop.generate([prompt_ids(tokenizer)], SamplingSettings(n=1, max_new_tokens=400))
    assert text.endswith("<answer>\n42\n</answer>")
    assert loop.last[0][0].calls[0]["error"] and tool_stats(loop.last)["tool_error_rate"] == 1.0


def test_no_call_no_loop_and_the_budget_is_shared(tokenizer):
    plain = ToolLoop(Scripted(tokenizer, ANSWER), tokenizer, [contain(calculator)], max_rounds=2)
    plain.generate([prompt_ids(tokenizer)], SamplingSettings(n=2, max_new_tokens=400))
    assert tool_stats(plain.last)["tool_calls_per_answer"] == 0.0
    tight = Scripted(tokenizer, call())
    loop = ToolLoop(tight, tokenizer, [contain(calculator)], max_rounds=2)
    budget = len(tokenizer.encode(call(), add_special_tokens=False)) + 3  # room for the call, not the tool turn
    [[(text, ids)]] = loop.generate([prompt_ids(tokenizer)], SamplingSettings(n=1, max_new_tokens=budget))
    assert len(tight.prompts) == 1 and len(ids) <= budget  # the tool turn did not fit: no second turn
    assert "<answer>" not in text and loop.last[0][0].calls[0]["result"] == "42"  # the call itself ran


class AlwaysCalls(Scripted):
    def generate(self, prompts, settings, progress=None):
        ids = self.tokenizer.encode(call(), add_special_tokens=False)
        self.prompts.extend(prompts)
        return [[(call(), ids)] * settings.n for _ in prompts]


def test_a_model_still_calling_at_the_last_round_is_scored_on_its_last_turn(tokenizer):
    """The rounds run out while the model still calls: its final text is read from that last turn
    (the call, with no answer in it), not from an earlier one."""
    inner = AlwaysCalls(tokenizer, None)
    loop = ToolLoop(inner, tokenizer, [contain(calculator)], max_rounds=2)
    [[(text, ids)]] = loop.generate([prompt_ids(tokenizer)], SamplingSettings(n=1, max_new_tokens=400))
    ((rollout,),) = loop.last
    assert len(inner.prompts) == 3 and len(rollout.calls) == 2 and len(rollout.turn_starts) == 2
    assert "<answer>" not in text and "42" not in text
    assert text == loop.cut_text(0, 0, ids)  # the same reading, whole
