"""The gsm8k transform on both dataset shapes, through the loader Axolotl calls."""

import pytest

from axolotl_grpo_plugin.transforms import gsm8k
from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT


OPENAI_ROW = {
    "question": "Natalia sold clips to 48 of her friends in April, and then half as many in May. "
    "How many clips did Natalia sell altogether?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72",
}
SKRISHNA_ROW = {"text": OPENAI_ROW["question"], "label": "72"}


def test_system_prompt_is_the_published_one():
    assert SYSTEM_PROMPT == (
        "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
    )


@pytest.mark.parametrize("row", [OPENAI_ROW, SKRISHNA_ROW], ids=["openai/gsm8k", "skrishna"])
def test_both_shapes_give_the_same_prompt_and_answer(row):
    out = gsm8k.transform_row(row)
    assert out["prompt"] == [
        {"role": "user", "content": SYSTEM_PROMPT + "\n\n" + OPENAI_ROW["question"]}
    ]
    assert out["answer"] == "72"
    assert out["data_source"] == "gsm8k"


@pytest.mark.parametrize(
    "raw, expected", [("#### 1,000", "1000"), ("steps\n#### 1000.0", "1000"), ("#### $18.50", "18.5"),
                      ("#### -3", "-3")],
)
def test_answers_are_normalised_numbers(raw, expected):
    assert gsm8k.transform_row({"question": "q", "answer": raw})["answer"] == expected


def test_label_may_be_an_int():
    assert gsm8k.transform_row({"text": "q", "label": 1200})["answer"] == "1200"


def test_system_message_option_moves_the_instruction():
    out = gsm8k.transform_row(OPENAI_ROW, system_prompt_role="system")
    assert out["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": OPENAI_ROW["question"]},
    ]


def test_loader_reads_the_option_from_the_plugin_section():
    fn, map_kwargs = gsm8k.load({"grpo_plugin": {"system_prompt_role": "system"}}, dataset_idx=0)
    assert map_kwargs == {"remove_columns": "__all__"}
    assert fn(OPENAI_ROW)["prompt"][0]["role"] == "system"
    default_fn, _ = gsm8k.load({}, dataset_idx=0)
    assert default_fn(OPENAI_ROW)["prompt"][0]["role"] == "user"


def test_wrong_columns_name_what_was_found_and_expected():
    with pytest.raises(gsm8k.GSM8KRowError) as err:
        gsm8k.transform_row({"problem": "q", "solution": "s"})
    message = str(err.value)
    assert "'problem'" in message and "'question'" in message and "'text'" in message


def test_answer_without_a_number_is_an_error():
    with pytest.raises(gsm8k.GSM8KRowError, match="no final number"):
        gsm8k.transform_row({"question": "q", "answer": "#### seventy"})


def test_transform_through_datasets_map_on_the_bundled_sample(repo_root):
    from datasets import load_dataset

    path = repo_root / "axolotl_grpo_plugin" / "data" / "gsm8k_sample.jsonl"
    ds = load_dataset("json", data_files=str(path), split="train")
    fn, map_kwargs = gsm8k.load({}, 0)
    out = ds.map(fn, remove_columns=ds.column_names)
    assert set(out.column_names) == {"prompt", "answer", "data_source"}
    assert len(out) == len(ds)
    assert all(row["answer"] == row_in["answer"].rsplit("####", 1)[1].strip().replace(",", "")
               for row, row_in in zip(out, ds))


def test_real_gsm8k_rows_all_transform(shared_dir):
    import json

    rows = [json.loads(line) for line in open(shared_dir / "data/gsm8k/test.jsonl", encoding="utf-8")]
    answers = [gsm8k.transform_row(row)["answer"] for row in rows]
    assert len(answers) == 1319 and all(answers)


def cookbook_row(row: dict) -> dict:
    """What the Axolotl cookbook's transform (grpo/gsm8k_grpo.py) gives for a skrishna row."""
    return {"prompt": [{"role": "user", "content": SYSTEM_PROMPT + "\n\n" + row["text"]}],
            "answer": row["label"].replace(",", "")}


def test_real_gsm8k_rows_match_the_cookbook_transform(shared_dir):
    import json

    for split in ("train", "test"):
        lines = (shared_dir / "data" / "gsm8k" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        for line in lines:
            row = json.loads(line)
            skrishna = {"text": row["question"], "label": row["answer"].rsplit("####", 1)[1].strip()}
            ours = gsm8k.transform_row(skrishna)
            assert {k: ours[k] for k in ("prompt", "answer")} == cookbook_row(skrishna), row
            assert gsm8k.transform_row(row)["answer"] == ours["answer"]


@pytest.mark.parametrize("label, cookbook, ours", [("1,000", "1000", "1000"), ("$18.50", "$18.50", "18.5"),
                                                   ("007", "007", "7")])
def test_labels_the_cookbook_keeps_as_written(label, cookbook, ours):
    row = {"text": "q", "label": label}
    assert cookbook_row(row)["answer"] == cookbook
    assert gsm8k.transform_row(row)["answer"] == ours
