"""`axolotl-grpo score`'s inputs and outputs: nothing scored is an input error that leaves the
output alone, counts read as counts, and --output's folder is made or its problem named.
(Scoring itself, remote rewards and a failure midway: tests/test_remote_rewards.py.)"""

from __future__ import annotations

import json

import pytest

from axolotl_grpo_plugin.commands.score import main


ROW = {"prompt": "What is 3 + 4?", "completion": "<answer>\n7\n</answer>", "answer": "7"}


@pytest.fixture
def config(repo_root):
    return str(repo_root / "configs" / "smoke.yaml")


@pytest.mark.parametrize(("text", "said"), [
    ("not json\n", "1 line that is not a JSON object (line 1)"),
    ("", "the file is empty"),
    (json.dumps({"prompt": "p"}) + "\n" + json.dumps({"step": 1}) + "\n", "2 rows without a `completion` field"),
    (json.dumps(ROW)[:-3], "1 line that is not a JSON object (line 1, a torn last line)"),
    ("\n[1]\nnot json\n" + json.dumps(ROW)[:-3], "3 lines that are not a JSON object (lines 2, 3, 4; "
                                                  "the last, line 4, is torn)"),
    ("not json\n" * 7, "7 lines that are not a JSON object (lines 1, 2, 3, 4, 5, ...)"),
])
def test_nothing_to_score_is_an_input_error_that_leaves_the_output_alone(config, tmp_path, capsys, text, said):
    source, out = tmp_path / "rows.jsonl", tmp_path / "rows.scored.jsonl"
    source.write_text(text)
    out.write_text("an earlier result\n")
    assert main([config, "--input", str(source)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"error: --input = {str(source)!r}: nothing to score: {said}") and "\n" not in err
    assert f"{out} was not written" in err and "Fix: give jsonl rows with a `completion`" in err
    assert captured.out == "" and out.read_text() == "an earlier result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "rows.scored.jsonl"]


def test_one_row_and_one_skipped_line_read_in_the_singular(config, tmp_path, capsys):
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps(ROW) + "\nnot json\n" + json.dumps({"step": 1}) + "\n")
    assert main([config, "--input", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"scored 1 row of {source} -> {tmp_path / 'rows.scored.jsonl'}",
                         "skipped 1 line that is not a JSON object (line 2)",  # not "a torn last line"
                         "skipped 1 row without a `completion` field (the rollout log's own records, "
                         "e.g. run start and end, have none)"]


def test_a_whole_last_line_without_a_newline_is_scored(config, tmp_path, capsys):
    """A file a script wrote without the final newline: its last row is scored, not dropped as torn."""
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "completion": "<answer>\n8\n</answer>"}))
    assert main([config, "--input", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"scored 2 rows of {source} -> {tmp_path / 'rows.scored.jsonl'}"
    assert not any(line.startswith("skipped") for line in lines)
    scored = [json.loads(line) for line in (tmp_path / "rows.scored.jsonl").read_text().splitlines()]
    assert [row["rewards"]["correctness"] for row in scored] == [2.0, 0.0]


def test_output_in_a_missing_folder_is_made_as_other_tools_do(config, tmp_path, capsys):
    source, out = tmp_path / "rows.jsonl", tmp_path / "new" / "deeper" / "scored.jsonl"
    source.write_text(json.dumps(ROW) + "\n")
    assert main([config, "--input", str(source), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["rewards"]["correctness"] == 2.0
    assert f"-> {out}" in capsys.readouterr().out


@pytest.mark.parametrize(("where", "said"), [
    ("rows.jsonl/scored.jsonl", "{tmp}/rows.jsonl is a file, not a folder"),
    ("rows.jsonl/sub/scored.jsonl", "cannot make its folder {tmp}/rows.jsonl/sub (Not a directory)"),
    (".", "is a folder. Fix: name a file in it"),
])
def test_an_output_that_cannot_be_written_is_named_before_scoring(config, tmp_path, capsys, where, said):
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps(ROW) + "\n")
    out = tmp_path / where
    assert main([config, "--input", str(source), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --output = {str(out)!r}: ") and "\n" not in err
    assert said.format(tmp=tmp_path) in err and ".tmp" not in err
