"""The R1 cold-start transform: GSM8K solutions as `<reasoning>/<answer>` replies that the
cookbook's strict format reward accepts, behind the exact prompt GRPO later sees."""

from __future__ import annotations

import json

import pytest

from axolotl_grpo_plugin.registry import TRANSFORMS
from axolotl_grpo_plugin.transforms import gsm8k, gsm8k_r1
from axolotl_grpo_plugin.transforms.gsm8k import GSM8KRowError
from axolotl_grpo_rewards.gsm8k import correctness_reward_func, strict_format_reward_func


ROW = {
    "question": "Natalia sold clips to 48 of her friends in April, and then half as many in May. "
    "How many clips did Natalia sell altogether?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72",
}


def test_the_reply_is_the_solution_without_calculator_notes_and_the_number():
    messages = gsm8k_r1.transform_row(ROW)["messages"]
    assert messages[-1] == {"role": "assistant", "content": (
        "<reasoning>\nNatalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n"
        "</reasoning>\n<answer>\n72\n</answer>")}


@pytest.mark.parametrize("role", ["user", "system"])
def test_the_prompt_is_the_one_grpo_sees(role):
    messages = gsm8k_r1.transform_row(ROW, system_prompt_role=role)["messages"]
    assert messages[:-1] == gsm8k.transform_row(ROW, system_prompt_role=role)["prompt"]


def test_registered_and_loaded_with_the_configs_role():
    row_fn, options = TRANSFORMS.load("gsm8k_r1")({"grpo_plugin": {"system_prompt_role": "system"}}, dataset_idx=0)
    assert row_fn(ROW)["messages"][0]["role"] == "system" and options == {"remove_columns": "__all__"}


def test_rows_without_a_worked_solution_are_refused_by_name():
    with pytest.raises(GSM8KRowError, match="skrishna"):
        gsm8k_r1.transform_row({"text": "q", "label": "72"})
    with pytest.raises(GSM8KRowError, match="#### N"):
        gsm8k_r1.transform_row({"question": "q", "answer": "72"})


def test_every_gsm8k_train_reply_earns_the_strict_format_and_correctness_rewards(shared_dir):
    rows = [json.loads(line) for line in (shared_dir / "data" / "gsm8k" / "train.jsonl").open()]
    replies = [[{"role": "assistant", "content": gsm8k_r1.transform_row(r)["messages"][-1]["content"]}] for r in rows]
    answers = [gsm8k.final_answer(r["answer"]) for r in rows]
    assert all("<<" not in c[0]["content"] for c in replies)
    assert set(strict_format_reward_func(replies)) == {0.5}
    assert set(correctness_reward_func(replies, answers)) == {2.0}


def test_axolotls_sft_loader_trains_on_the_reply_only(smollm2_dir):
    """Through Axolotl's own prompt-strategy loader, as `type: axolotl_grpo_plugin.transforms.gsm8k_r1`."""
    from axolotl.prompt_strategies import load
    from axolotl.utils.dict import DictDefault
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    cfg = DictDefault({"chat_template": "tokenizer_default", "sequence_len": 512, "base_model": str(smollm2_dir)})
    strategy = load("axolotl_grpo_plugin.transforms.gsm8k_r1", tokenizer, cfg, {"path": "x"})
    single = strategy.tokenize_prompt(dict(ROW))
    batch = strategy.tokenize_prompt({k: [v, v] for k, v in ROW.items()})
    assert batch["input_ids"][0] == single["input_ids"]
    trained = [t for t, label in zip(single["input_ids"], single["labels"]) if label != -100]
    text = tokenizer.decode(trained)
    assert text.startswith("<reasoning>\nNatalia sold 48/2 = 24") and "<answer>\n72\n</answer><|im_end|>" in text
    assert "Respond in the following format" in tokenizer.decode(single["input_ids"])
