"""The R1 cold-start transform: GSM8K solutions as `<reasoning>/<answer>` replies that the
cookbook's strict format reward accepts, behind the exact prompt GRPO later sees."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.mark.integration
def test_an_sft_config_takes_the_grpo_runs_system_turn_layout(embedded_model_dir, tmp_path):
    """A cold-start SFT config listing CPUThreadsPlugin with `grpo_plugin.system_prompt_role:
    system`: `check` accepts it as an SFT config (a typo in the role is named), and Axolotl's own
    preprocessing keeps the section, so the trained rows have the instructions in the system turn."""
    import glob
    import shutil
    import subprocess

    import yaml
    from conftest import cold_start_sft_config, subprocess_env
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    cfg = cold_start_sft_config(embedded_model_dir, tmp_path, grpo_plugin={"system_prompt_role": "system"})
    env = subprocess_env()
    tool, axolotl = (shutil.which(name, path=env["PATH"]) for name in ("axolotl-grpo", "axolotl"))

    def run(*argv):
        return subprocess.run(list(argv), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({**cfg, "grpo_plugin": {"system_prompt_role": "sytem"}}))
    refused = run(tool, "check", str(typo), "--cpu")
    assert refused.returncode == 2 and "grpo_plugin.system_prompt_role = 'sytem'" in refused.stderr, refused.stderr
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    checked = run(tool, "check", str(path), "--cpu")
    assert checked.returncode == 0 and "not a GRPO config" in checked.stdout, checked.stdout + checked.stderr
    prepared = run(axolotl, "preprocess", str(path))
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    (info,) = glob.glob(str(tmp_path / "prepared" / "*" / "dataset_info.json"))
    folder = str(Path(info).parent)
    text = AutoTokenizer.from_pretrained(str(embedded_model_dir)).decode(load_from_disk(folder)[0]["input_ids"])
    system, user = text.split("<|im_start|>system\n", 1)[1].split("<|im_start|>user\n", 1)
    assert system.startswith("Respond in the following format:") and not user.startswith("Respond"), text
