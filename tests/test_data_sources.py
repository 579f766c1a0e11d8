"""The shared dataset loader (axolotl_grpo_plugin.sources.data) that the stats
tool and the evaluator both read through: every source kind gives the rows Axolotl
0.19's own `load_dataset_with_config` gives, and bad input names the field and fix."""

from __future__ import annotations

import json

import pytest

from axolotl_grpo_plugin.sources.data import (
    DatasetSpec,
    DataSourceError,
    dataset_specs,
    load_rows,
)


ROWS = [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(7)]
HELD_OUT = [{"question": "What is 100 + 1?", "answer": "#### 101"}]


def _write(tmp_path, kind: str) -> DatasetSpec:
    """A tiny dataset of each source kind, written here, as a `datasets[0]` entry."""
    import datasets
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    if kind == "jsonl":
        path = tmp_path / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    elif kind == "json":
        path = tmp_path / "rows.json"
        path.write_text(json.dumps(ROWS), encoding="utf-8")
    elif kind == "parquet":
        path = tmp_path / "rows.parquet"
        frame.to_parquet(path)
    elif kind == "csv":
        path = tmp_path / "rows.csv"
        frame.to_csv(path, index=False)
    elif kind == "save_to_disk":
        path = tmp_path / "saved"
        datasets.Dataset.from_list(ROWS).save_to_disk(str(path))
    elif kind == "save_to_disk_dict":
        path = tmp_path / "saved_dict"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                              "test": datasets.Dataset.from_list(HELD_OUT)}).save_to_disk(str(path))
    elif kind == "dir_with_data_files":
        path = tmp_path / "folder"
        path.mkdir()
        (path / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
        return DatasetSpec(path=str(path), data_files=str(path / "part.jsonl"), split="train")
    else:
        raise AssertionError(kind)
    return DatasetSpec(path=str(path))


KINDS = ["jsonl", "json", "parquet", "csv", "save_to_disk", "save_to_disk_dict", "dir_with_data_files"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_source_kind_gives_its_rows(kind, tmp_path):
    rows = load_rows(_write(tmp_path, kind))
    assert [dict(r) for r in rows] == ROWS


@pytest.mark.parametrize("kind", KINDS)
def test_rows_are_the_ones_axolotls_loader_reads(kind, tmp_path):
    """Parity with Axolotl 0.19's `load_dataset_with_config` on the same entry (its RL loader
    then takes the `train` split of a DatasetDict)."""
    from axolotl.utils.data.shared import load_dataset_with_config
    from axolotl.utils.dict import DictDefault
    from datasets import DatasetDict

    spec = _write(tmp_path, kind)
    entry = {"path": spec.path, "split": spec.split, "data_files": spec.data_files}
    theirs = load_dataset_with_config(DictDefault(entry), False, streaming=False)
    if isinstance(theirs, DatasetDict):
        theirs = theirs["train"]
    assert [dict(r) for r in load_rows(spec)] == [dict(r) for r in theirs]


def test_a_datasetdict_directory_gives_the_asked_split(tmp_path):
    spec = _write(tmp_path, "save_to_disk_dict")
    assert [dict(r) for r in load_rows(spec, "test")] == HELD_OUT
    spec.split = "test"
    assert [dict(r) for r in load_rows(spec)] == HELD_OUT


def test_a_missing_split_lists_the_splits(tmp_path):
    spec = _write(tmp_path, "save_to_disk_dict")
    spec.split = "validation"
    with pytest.raises(DataSourceError, match=r"^datasets\[0\]\.split = 'validation': .*\['test', 'train'\]. Fix:"):
        load_rows(spec)


def test_a_single_save_to_disk_dataset_is_not_taken_for_a_held_out_split(tmp_path):
    """Axolotl ignores `split:` there (the whole dataset); evaluation must not score training rows."""
    spec = _write(tmp_path, "save_to_disk")
    spec.split = "test"
    assert len(load_rows(spec)) == len(ROWS)  # as Axolotl reads it for training
    with pytest.raises(DataSourceError, match=r"datasets\[0\]\.split = 'test': .*no named splits"):
        load_rows(spec, "test", exact_split=True)


def test_a_missing_path_names_the_field_and_the_fix(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataSourceError) as info:
        load_rows(DatasetSpec(path=str(missing), key="datasets[2]"))
    message = str(info.value)
    assert message.startswith(f"datasets[2].path = {str(missing)!r}: file not found")
    assert "Fix: correct the path." in message and "\n" not in message
    with pytest.raises(DataSourceError, match=r"^--dataset = .*nope\.jsonl"):
        load_rows(DatasetSpec(path=str(missing), key="--dataset"))


def test_an_unreadable_file_says_which_builder_failed(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet at all", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"datasets\[0\]\.path = .*bad\.parquet'?: cannot read it as parquet .*Fix:"):
        load_rows(DatasetSpec(path=str(bad)))


def test_an_empty_dataset_is_an_error(tmp_path):
    import datasets

    empty = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"question": []})})
    with pytest.raises(DataSourceError, match=r"^datasets\[0\]\.path = .*: the dataset has no rows \(split train\)"):
        load_rows(DatasetSpec(path=empty))
    header_only = tmp_path / "empty.csv"  # `datasets` itself refuses an empty file: still one named line
    header_only.write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"^datasets\[0\]\.path = .*empty\.csv'?: cannot read it as csv"):
        load_rows(DatasetSpec(path=str(header_only)))


def test_in_memory_datasets_pass_through():
    import datasets

    assert len(load_rows(DatasetSpec(path=datasets.Dataset.from_list(ROWS)))) == len(ROWS)


# --- the config ---------------------------------------------------------------------------------

def test_dataset_entries_are_checked(tmp_path):
    spec, = dataset_specs([{"path": "x.jsonl", "type": "gsm8k", "split": "train[:5]", "name": "main"}])
    assert (spec.path, spec.transform, spec.split, spec.name, spec.key) == ("x.jsonl", "gsm8k", "train[:5]", "main",
                                                                         "datasets[0]")
    tests = dataset_specs([{"path": "t.jsonl"}], "test_datasets")
    assert tests[0].key == "test_datasets[0]"
    with pytest.raises(DataSourceError, match=r"^datasets = .*names no datasets entry.*Fix: add `datasets:"):
        dataset_specs(None)
    with pytest.raises(DataSourceError, match=r"^datasets = \{'path': 'a'\}: must be a list"):
        dataset_specs({"path": "a"})
    with pytest.raises(DataSourceError, match=r"datasets\[1\] = .*needs a `path`"):
        dataset_specs([{"path": "a"}, {"type": "gsm8k"}])
    with pytest.raises(DataSourceError, match=r"datasets\[0\]\.name = \['a', 'b'\]"):
        dataset_specs([{"path": "a", "name": ["a", "b"]}])
