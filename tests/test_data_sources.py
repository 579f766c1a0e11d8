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
    head_rows,
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


# --- head_rows: the first rows without importing `datasets` where datasets' json builder is plain pyarrow ---

HEAD_FILES = {
    "flat": [{"question": "q1", "answer": "#### 1"}, {"question": "q2", "answer": "#### 2"}],
    "missing keys": [{"a": 1}, {"a": 2, "b": "x"}, {"b": "y"}],
    "ints and floats": [{"x": 1}, {"x": 2.5}, {"x": None}],
    "lists of scalars": [{"numbers": [1, 2, 3], "target": 6}, {"numbers": [4], "target": 4}],
    "bools and unicode": [{"ok": True, "text": "naïve ∑"}, {"ok": False, "text": ""}],
    "nested objects": [{"messages": [{"role": "user", "content": "hi"}]}, {"messages": []}],
    "mixed types": [{"x": 1}, {"x": "one"}],
}


def _write_jsonl(path, rows, raw: str | None = None):
    path.write_text(raw if raw is not None else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _both_ways(path, count=3, **spec):
    """head_rows, and load_rows(...).select(...).to_dict() (datasets' own reading), or the error of each."""
    out = []
    for way in ("head", "datasets"):
        try:
            if way == "head":
                out.append(head_rows(DatasetSpec(path=str(path), **spec), count))
            else:
                loaded = load_rows(DatasetSpec(path=str(path), **spec))
                out.append(loaded.select(range(min(count, len(loaded)))).to_dict())
        except Exception as exc:  # noqa: BLE001 - the errors are compared
            out.append(f"{type(exc).__name__}: {exc}")
    return out


@pytest.mark.parametrize("kind", HEAD_FILES)
def test_head_rows_are_what_datasets_reads(kind, tmp_path):
    head, theirs = _both_ways(_write_jsonl(tmp_path / "rows.jsonl", HEAD_FILES[kind]))
    assert head == theirs
    assert json.dumps(head, sort_keys=True) == json.dumps(theirs, sort_keys=True)  # 1 vs 1.0, True vs 1


@pytest.mark.parametrize("raw", ["", "\n\n", '{"a": 1}\nnot json\n', '[{"a": 1}, {"a": 2}]', '{"a": 1}{"a": 2}\n',
                                 '\ufeff{"a": 1}\n'],
                         ids=["empty", "blank lines", "a bad line", "a json list", "two objects on a line", "bom"])
def test_head_rows_of_odd_files_are_what_datasets_says(raw, tmp_path):
    head, theirs = _both_ways(_write_jsonl(tmp_path / "rows.jsonl", [], raw=raw))
    assert head == theirs


def test_head_rows_takes_the_fast_path_for_a_flat_jsonl_and_not_for_a_split(tmp_path, monkeypatch):
    from axolotl_grpo_plugin.sources import data

    path = _write_jsonl(tmp_path / "rows.jsonl", HEAD_FILES["flat"])
    monkeypatch.setattr(data, "load_rows", lambda *a, **k: pytest.fail("went through datasets"))
    assert head_rows(DatasetSpec(path=str(path)), 1) == {"question": ["q1"], "answer": ["#### 1"]}
    monkeypatch.undo()
    assert "DataSourceError" in _both_ways(path, split="test")[0]  # datasets' answer: no such split


@pytest.mark.parametrize(("raw", "says"), [
    ("", "the file is empty"),
    ("\n\n", "the file has only blank lines"),
    ('{"a": 1}\n[1, 2]\n', "line 2 is a JSON array, not an object (one JSON object per line)"),
    ('[{"a": 1}]\n[{"a": 2}]\n', "line 1 is a JSON array, not an object"),
    ('{"a": 1}\n{"a": bad\n', "line 2 is not JSON"),
    ('{"a": 1}\n7\n', "line 2 is a JSON int, not an object"),
])
def test_a_bad_json_lines_file_says_what_is_wrong_in_its_terms(raw, says, tmp_path):
    """Not `datasets`' own words ("StopIteration", "Trailing data"); head_rows and load_rows alike."""
    path = _write_jsonl(tmp_path / "rows.jsonl", [], raw=raw)
    for read in (lambda: head_rows(DatasetSpec(path=str(path)), 3), lambda: load_rows(DatasetSpec(path=str(path)))):
        with pytest.raises(DataSourceError) as caught:
            read()
        assert says in str(caught.value) and "one JSON object per line" in str(caught.value)


def test_an_unimportable_transform_names_the_path_as_written(tmp_path):
    from axolotl_grpo_plugin.registry import TRANSFORMS
    from axolotl_grpo_plugin.sources.transforms import TransformError, load_transform

    for kind, why in (("nosuchmod.fn", "no module `nosuchmod`"), ("os.nosuchfn", "module `os` has no `nosuchfn`")):
        with pytest.raises(TransformError) as caught:
            load_transform(DatasetSpec(path="x.jsonl", transform=kind, key="--dataset"), {}, 0)
        text = str(caught.value)
        assert f"the transform `{kind}` could not be imported ({why})" in text, text
        assert "prompt_strategies" not in text and ", ".join(TRANSFORMS.names()) in text
