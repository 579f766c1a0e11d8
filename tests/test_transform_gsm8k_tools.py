"""The tool cold start (issue 49, item 5): GSM8K solutions as calculator calls, their answers and
the R1 reply, rendered with the tool block TRL puts in GRPO prompts, trained on the calls and the
reply only."""

from __future__ import annotations

import json
from fractions import Fraction

from axolotl_grpo_plugin.registry import TRANSFORMS
from axolotl_grpo_plugin.transforms import gsm8k_r1, gsm8k_tools
from axolotl_grpo_rewards.gsm8k import strict_format_reward_func


ROW = {
    "question": "Natalia sold clips to 48 of her friends in April, and then half as many in May. "
    "How many clips did Natalia sell altogether?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72",
}


def call(expression, said=""):
    return {"role": "assistant", "content": said, "tool_calls": [
        {"type": "function", "function": {"name": "calculator", "arguments": {"expression": expression}}}]}


def test_each_mark_is_a_call_and_its_answer_then_the_r1_reply():
    row = gsm8k_tools.transform_row(ROW)
    assert row["messages"][1:] == [
        call("48/2"), {"role": "tool", "name": "calculator", "content": "24"},
        call("48+24"), {"role": "tool", "name": "calculator", "content": "72"},
        {"role": "assistant", "content": gsm8k_r1.reply(ROW["answer"])}]
    assert row["messages"][0] == gsm8k_r1.transform_row(ROW)["messages"][0]  # the GRPO prompt
    (schema,) = row["tools"]
    assert schema["function"]["name"] == "calculator" and "expression" in schema["function"]["parameters"]["properties"]


def test_a_mark_the_calculator_refuses_is_left_out():
    row = dict(ROW, answer="She has 10% of 50 = <<10%*50=5>>5 and 5+1 = <<5+1=6>>6.\n#### 6")
    calls = [m for m in gsm8k_tools.transform_row(row)["messages"] if m.get("tool_calls")]
    assert calls == [call("5+1")]


def test_interleaved_each_call_follows_the_text_that_leads_to_it():
    row = gsm8k_tools.transform_row(ROW, interleave=True)
    assert row["messages"][1:] == [
        call("48/2", "Natalia sold 48/2 ="), {"role": "tool", "name": "calculator", "content": "24"},
        call("48+24", "24 clips in May.\nNatalia sold 48+24 ="), {"role": "tool", "name": "calculator", "content": "72"},
        {"role": "assistant", "content": "<reasoning>\n72 clips altogether.\n</reasoning>\n<answer>\n72\n</answer>"}]
    assert row["messages"][0] == gsm8k_tools.transform_row(ROW)["messages"][0] and row["tools"] == gsm8k_tools.tool_schemas()


def test_interleaved_a_refused_mark_stays_in_the_text_as_its_value():
    row = dict(ROW, answer="She has 10% of 50 = <<10%*50=5>>5 and 5+1 = <<5+1=6>>6 in all.\n#### 6")
    messages = gsm8k_tools.transform_row(row, interleave=True)["messages"]
    assert messages[1:3] == [call("5+1", "She has 10% of 50 = 5 and 5+1 ="),
                             {"role": "tool", "name": "calculator", "content": "6"}]
    assert messages[-1]["content"] == "<reasoning>\n6 in all.\n</reasoning>\n<answer>\n6\n</answer>"
    no_marks = dict(ROW, answer="Twice 3 is 6.\n#### 6")
    assert gsm8k_tools.transform_row(no_marks, interleave=True) == gsm8k_tools.transform_row(no_marks)


def test_interleaved_is_registered_and_is_what_axolotl_loads(embedded_model_dir):
    from axolotl.prompt_strategies import load
    from axolotl.utils.dict import DictDefault
    from transformers import AutoTokenizer

    row_fn, _ = TRANSFORMS.load("gsm8k_tools_interleaved")({})
    assert row_fn(ROW) == gsm8k_tools.transform_row(ROW, interleave=True)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    cfg = DictDefault({"chat_template": "qwen_25", "sequence_len": 2048, "base_model": str(embedded_model_dir)})
    strategy = load("axolotl_grpo_plugin.transforms.gsm8k_tools_interleaved", tokenizer, cfg, {"path": "x"})
    single = strategy.tokenize_prompt(dict(ROW))
    trained = tokenizer.decode([t for t, label in zip(single["input_ids"], single["labels"]) if label != -100])
    assert 'Natalia sold 48/2 =\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "48/2"}}' in trained
    assert "24 clips in May." in trained and "<tool_response>" not in trained


def test_registered_with_the_configs_role():
    row_fn, options = TRANSFORMS.load("gsm8k_tools")({"grpo_plugin": {"system_prompt_role": "system"}})
    assert row_fn(ROW)["messages"][0]["role"] == "system" and options == {"remove_columns": "__all__"}


def test_every_gsm8k_train_row_converts_and_the_calculator_agrees_with_the_marks(shared_dir):
    rows = [json.loads(line) for line in (shared_dir / "data" / "gsm8k" / "train.jsonl").open()]
    agree = total = 0
    for row in rows:
        converted = gsm8k_tools.transform_row(row)["messages"]
        marks = gsm8k_tools.MARK.findall(row["answer"])
        answers = [m["content"] for m in converted if m["role"] == "tool"]
        total += len(marks)
        for (_, written), answered in zip(marks, answers):
            try:
                agree += abs(Fraction(answered) - Fraction(written.strip().replace(",", ""))) < Fraction(1, 100)
            except ValueError:
                pass
    assert total > 20_000 and agree / total > 0.97
    for interleave in (False, True):
        replies = [[gsm8k_tools.transform_row(r, interleave=interleave)["messages"][-1]] for r in rows[:500]]
        assert set(strict_format_reward_func(replies)) == {0.5}


def test_axolotls_sft_loader_trains_on_the_calls_and_the_reply_only(embedded_model_dir):
    from axolotl.prompt_strategies import load
    from axolotl.utils.dict import DictDefault
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    cfg = DictDefault({"chat_template": "qwen_25", "sequence_len": 2048, "base_model": str(embedded_model_dir)})
    strategy = load("axolotl_grpo_plugin.transforms.gsm8k_tools", tokenizer, cfg, {"path": "x"})
    single = strategy.tokenize_prompt(dict(ROW))
    batch = strategy.tokenize_prompt({k: [v, v] for k, v in ROW.items()})
    assert batch["input_ids"][0] == single["input_ids"]
    trained = tokenizer.decode([t for t, label in zip(single["input_ids"], single["labels"]) if label != -100])
    whole = tokenizer.decode(single["input_ids"])
    assert '"name": "calculator"' in whole and "<tools>" in whole  # the tool block TRL renders too
    assert '<tool_call>\n{"name": "calculator", "arguments": {"expression": "48/2"}}\n</tool_call>' in trained
    assert "<answer>\n72\n</answer>" in trained
    assert "<tool_response>" in whole and "<tool_response>" not in trained and "Respond in" not in trained
