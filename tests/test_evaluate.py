"""The evaluator: prompts as training builds them, scores as the rewards give them,
pass@k by the unbiased estimator, determinism, and clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import cli_exit

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.evaluate import (
    EvalError,
    build_problems,
    compare,
    core,
    evaluate,
    hook,
    load_config,
    paired_bootstrap,
    pass_at_k,
    write_results,
)
from axolotl_grpo_plugin.evaluate.passk import report_ks
from axolotl_grpo_plugin.evaluate.results import format_result
from axolotl_grpo_plugin.sampling import models
from axolotl_grpo_plugin.transforms.gsm8k import transform_row
from axolotl_grpo_rewards import gsm8k


TEST_FILE = "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl"
FAST = dict(max_new_tokens=8, batch_size=8, progress=False)


@pytest.fixture(scope="module")
def smoke_cfg(repo_root, embedded_model_dir):
    """configs/smoke.yaml with absolute paths (tests run from any directory)."""
    cfg = load_config(repo_root / "configs" / "smoke.yaml")
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl")
    return cfg


@pytest.fixture(scope="module")
def test_file(repo_root) -> str:
    return str(repo_root / TEST_FILE)


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir):
    return models.load_tokenizer(read_run({}), str(embedded_model_dir))


@pytest.fixture(scope="module")
def sampled_run(smoke_cfg, embedded_model_dir, test_file):
    return evaluate(smoke_cfg, str(embedded_model_dir), dataset=test_file, limit=4, samples=3,
                    seed=1, **FAST)


def raw_rows(path: str, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(n))]


# ---------------------------------------------------------------- prompts


def test_prompts_match_the_training_transform_and_trl_tokenization(smoke_cfg, tokenizer, test_file):
    problems = build_problems(smoke_cfg, tokenizer, run=read_run(smoke_cfg), split="test", dataset=test_file, limit=5)
    rows = raw_rows(test_file, 5)
    assert len(problems) == 5
    for problem, row in zip(problems, rows):
        expected = transform_row(row)
        assert problem.messages == expected["prompt"]
        assert problem.columns == {"answer": expected["answer"], "data_source": "gsm8k"}
        # GRPOTrainer._tokenize_prompts: apply_chat_template(tokenize=True, add_generation_prompt=True)
        trl_ids = tokenizer.apply_chat_template(
            [expected["prompt"]], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"][0]
        assert problem.input_ids == list(trl_ids)
        assert problem.text.endswith("<|im_start|>assistant\n")


def test_system_prompt_role_setting_reaches_the_prompts(smoke_cfg, tokenizer, test_file):
    cfg = {**smoke_cfg, "grpo_plugin": {"system_prompt_role": "system"}}
    (problem,) = build_problems(cfg, tokenizer, run=read_run(cfg), dataset=test_file, limit=1)
    assert [m["role"] for m in problem.messages] == ["system", "user"]


def test_train_split_reads_the_training_datasets(smoke_cfg, tokenizer, repo_root):
    (problem,) = build_problems(smoke_cfg, tokenizer, run=read_run(smoke_cfg), split="train", limit=1)
    row = raw_rows(str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl"), 1)[0]
    assert problem.messages == transform_row(row)["prompt"]


def test_test_split_prefers_test_datasets(smoke_cfg, tokenizer, test_file):
    cfg = {**smoke_cfg, "test_datasets": [{"path": test_file, "type": "gsm8k"}]}
    (problem,) = build_problems(cfg, tokenizer, run=read_run(cfg), split="test", limit=1)
    assert problem.messages == transform_row(raw_rows(test_file, 1)[0])["prompt"]


def test_save_to_disk_directories_are_read(smoke_cfg, tokenizer, test_file, tmp_path, repo_root):
    """Through the loader shared with the stats tool: a `save_to_disk` DatasetDict in
    `datasets:` gives its `test` split (once refused as a single-split local path), a
    saved Dataset works as `dataset=DIR`, and is not mistaken for a held-out split."""
    from datasets import Dataset, DatasetDict

    train_rows = raw_rows(str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl"), 3)
    test_rows = raw_rows(test_file, 2)
    kind = smoke_cfg["datasets"][0]["type"]
    splits = tmp_path / "gsm8k_splits"
    DatasetDict({"train": Dataset.from_list(train_rows), "test": Dataset.from_list(test_rows)}).save_to_disk(splits)
    cfg = {**smoke_cfg, "datasets": [{"path": str(splits), "type": kind}]}
    for split, rows in (("test", test_rows), ("train", train_rows)):
        problems = build_problems(cfg, tokenizer, run=read_run(cfg), split=split)
        assert [p.messages for p in problems] == [transform_row(r)["prompt"] for r in rows]
    single = tmp_path / "held_out"
    Dataset.from_list(test_rows).save_to_disk(single)
    problems = build_problems(smoke_cfg, tokenizer, run=read_run(smoke_cfg), split="test", dataset=str(single))
    assert [p.columns["answer"] for p in problems] == [transform_row(r)["answer"] for r in test_rows]
    with pytest.raises(EvalError, match=r"datasets\[0\]\.split = 'test': .*no named splits"):
        cfg = {**smoke_cfg, "datasets": [{"path": str(single), "type": kind}]}
        build_problems(cfg, tokenizer, run=read_run(cfg), split="test")


# ---------------------------------------------------------------- errors


def test_missing_test_split_of_a_local_file_is_a_clear_error(smoke_cfg, tokenizer):
    with pytest.raises(EvalError, match=r"datasets\[0\]\.path .*no 'test' split.*test_datasets"):
        build_problems(smoke_cfg, tokenizer, run=read_run(smoke_cfg), split="test")


def test_missing_column_is_a_clear_error(smoke_cfg, tokenizer, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "1+1?", "a": "2"}) + "\n")
    with pytest.raises(EvalError, match=r"row 0: the transform failed .*gsm8k.*columns \['a', 'q'\]"):
        build_problems(smoke_cfg, tokenizer, run=read_run(smoke_cfg), dataset=str(bad))


def test_untransformed_rows_without_prompt_are_a_clear_error(smoke_cfg, tokenizer, tmp_path):
    cfg = {**smoke_cfg, "test_datasets": [{"path": str(tmp_path / "x.jsonl")}]}
    (tmp_path / "x.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    with pytest.raises(EvalError, match="no 'prompt' column"):
        build_problems(cfg, tokenizer, run=read_run(cfg), split="test")


def test_cli_reports_errors_in_one_line(repo_root, capsys):
    from axolotl_grpo_plugin.commands.evaluate import main

    code = main([str(repo_root / "configs/smoke.yaml"), "--model", "./no/such/model"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --model = './no/such/model': no local folder") and "\n" not in err


def test_unknown_reward_name_is_reported(smoke_cfg, embedded_model_dir):
    cfg = {**smoke_cfg, "trl": {**smoke_cfg["trl"], "reward_funcs": ["corectness"]}}
    with pytest.raises(EvalError, match="Did you mean 'correctness'"):
        evaluate(cfg, str(embedded_model_dir), **FAST)


# ---------------------------------------------------------------- scoring


def test_scores_match_the_reward_functions_on_the_same_texts(sampled_run):
    funcs = {f.__name__: f for f in gsm8k.REWARD_FUNCS.values()}
    assert len(sampled_run.records) == 4 * (1 + 3)
    for record in sampled_run.records:
        completions = [[{"role": "assistant", "content": record["completion"]}]]
        for name, value in record["rewards"].items():
            func = funcs[name]
            assert value == pytest.approx(func(completions=completions, answer=[record["answer"]])[0])
        assert record["correct"] == (record["rewards"]["correctness_reward_func"] > 0)
        assert record["strict_format"] == gsm8k.is_strict_format(record["completion"])


class ScriptedGenerator:
    """Answers chosen per problem, so scoring is checked on known-good and bad texts."""

    name = "scripted"

    def __init__(self, texts_for):
        self.texts_for = texts_for

    def generate(self, prompts, settings, progress=None):
        return [[(t, [1] * len(t)) for t in self.texts_for(i, settings)] for i in range(len(prompts))]


def formatted(answer: str) -> str:
    return f"<reasoning>\nwork\n</reasoning>\n<answer>\n{answer}\n</answer>"


def test_accuracy_pass_at_k_and_format_follow_the_rewards(smoke_cfg, tokenizer, test_file, monkeypatch):
    golds = [transform_row(r)["answer"] for r in raw_rows(test_file, 6)]

    def texts_for(i, settings):
        if settings.greedy:  # right and formatted on even problems, wrong on odd ones
            return [formatted(golds[i]) if i % 2 == 0 else "the answer is 3"]
        # sampled: problem i has i correct samples out of 5 (capped)
        return [formatted(golds[i]) if j < i else formatted("-1") for j in range(settings.n)]

    monkeypatch.setattr(models, "make_generator", lambda *a, **k: ScriptedGenerator(texts_for))
    result = evaluate(smoke_cfg, "scripted", tokenizer=tokenizer, dataset=test_file, limit=6,
                      samples=5, progress=False)
    greedy = [r for r in result.records if r["kind"] == "greedy"]
    completions = [[{"role": "assistant", "content": r["completion"]}] for r in greedy]
    correctness = gsm8k.correctness_reward_func(completions=completions, answer=golds)
    assert result.accuracy == pytest.approx(sum(v > 0 for v in correctness) / 6) == pytest.approx(0.5)
    assert result.format_compliance == pytest.approx(
        sum(gsm8k.is_strict_format(r["completion"]) for r in greedy) / 6)
    for k in (1, 2, 4, 5):
        expected = sum(pass_at_k(5, min(i, 5), k) for i in range(6)) / 6
        assert result.pass_at_k[f"pass@{k}"] == pytest.approx(expected)
    assert result.reward_means["correctness_reward_func"] == pytest.approx(sum(correctness) / 6)
    assert result.mean_length == pytest.approx(sum(len(r["completion"]) for r in greedy) / 6)


def test_any_layout_accuracy_counts_the_final_number_wherever_it_is(smoke_cfg, tokenizer, test_file, monkeypatch):
    golds = [transform_row(r)["answer"] for r in raw_rows(test_file, 5)]
    budget = 200
    greedy_texts = [
        f"16 - 3 - 4 = 9, so \\boxed{{{golds[0]}}}",    # right outside the layout: any-layout only
        formatted(golds[1]),                               # right in the layout: both
        f"so the total is {golds[2]} dollars.",            # right as the last number: any-layout only
        "the answer is -1",                                # wrong: neither
        f"{golds[4]} " + "and so on " * 40,                # cut at the limit: its last number does not count
    ]
    monkeypatch.setattr(models, "make_generator",
                        lambda *a, **k: ScriptedGenerator(lambda i, s: [greedy_texts[i][:budget]]))
    result = evaluate(smoke_cfg, "scripted", tokenizer=tokenizer, dataset=test_file, limit=5, samples=0,
                      max_new_tokens=budget, progress=False)
    greedy = [r for r in result.records if r["kind"] == "greedy"]
    assert [r["any_layout"] for r in greedy] == [True, True, True, False, False]
    assert [r["correct"] for r in greedy] == [False, True, False, False, False]
    assert result.any_layout_accuracy == pytest.approx(3 / 5)
    assert result.metrics()["eval/any_layout_accuracy"] == pytest.approx(3 / 5)
    assert "any_layout_accuracy" in format_result(result)


def test_any_layout_accuracy_is_left_out_without_numeric_answers():
    from axolotl_grpo_plugin.sampling.prompts import Problem

    algebra = Problem(index=0, messages=[], text="", input_ids=[], columns={"answer": "x + 1"})
    assert core._any_layout(algebra, "so x + 1", tokens=4, max_new_tokens=8) is None
    result = core.EvalResult(model="m", split="test", n_problems=1, samples=0, seed=0, backend="hf",
                             max_new_tokens=8, temperature=0.0, correct_reward="correctness", accuracy=1.0,
                             pass_at_k={}, format_compliance=1.0, mean_length=3.0, reward_means={},
                             reward_mean=1.0)
    assert math.isnan(result.any_layout_accuracy)
    assert "any_layout_accuracy" not in format_result(result)
    assert "eval/any_layout_accuracy" not in result.metrics()
    diff, _, _ = paired_bootstrap([1.0, float("nan"), 0.0], [0.0, 1.0, 0.0])
    assert diff == pytest.approx(0.5)  # the problem without a score is left out of the pairs


class ClosableGenerator(ScriptedGenerator):
    closed = 0

    def close(self):
        self.closed += 1


def test_evaluate_stops_the_engine_it_built_and_only_that_one(smoke_cfg, tokenizer, test_file, monkeypatch):
    built = ClosableGenerator(lambda i, settings: ["no answer"] * settings.n)
    monkeypatch.setattr(models, "make_generator", lambda *a, **k: built)
    evaluate(smoke_cfg, "scripted", tokenizer=tokenizer, dataset=test_file, limit=2, samples=1,
             progress=False)
    assert built.closed == 1  # one more engine per scored model otherwise (the benchmark's stages)
    passed = ClosableGenerator(lambda i, settings: ["no answer"] * settings.n)
    evaluate(smoke_cfg, "scripted", tokenizer=tokenizer, dataset=test_file, limit=2, samples=0,
             progress=False, generator=passed)
    assert passed.closed == 0  # the trainer's own engine, which periodic evaluation borrows


def test_keep_replies_writes_one_in_format_reply_per_prompt_for_sft(repo_root, embedded_model_dir, test_file,
                                                                     tmp_path, monkeypatch, capsys):
    """R1's rejection round: a correct in-format reply first, else a sampled one before the greedy
    one; a prompt with no in-format reply gives no row; each row is the prompt's chat + the reply."""
    from axolotl_grpo_plugin.commands.evaluate import main

    golds = [transform_row(r)["answer"] for r in raw_rows(test_file, 4)]
    replies = {  # problem -> (greedy, samples)
        0: (formatted(golds[0]), [formatted("-1"), "loops loops"]),     # greedy: right and in format
        1: ("loops loops loops", [formatted("-1"), formatted("-2")]),  # only samples, both wrong
        2: ("loops", ["prose, no tags", "<answer>7</answer>"]),          # nothing in format
        3: (formatted("-1"), ["no", formatted(golds[3])]),               # a correct sample beats greedy
    }

    def texts_for(i, settings):
        greedy, samples = replies[i]
        return [greedy] if settings.greedy else samples[: settings.n]

    monkeypatch.setattr(models, "make_generator", lambda *a, **k: ScriptedGenerator(texts_for))
    kept = tmp_path / "rs" / "replies.jsonl"
    code = main([str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--dataset",
                 test_file, "--limit", "4", "--samples", "2", "--out", str(tmp_path / "out"),
                 "--keep-replies", str(kept), "--no-progress"])
    assert code == 0, capsys.readouterr()
    assert "3 of 4 problems had an in-format reply (2 of them correct)" in capsys.readouterr().out
    rows = [json.loads(line) for line in kept.read_text().splitlines()]
    chosen = [row["messages"][-1]["content"] for row in rows]
    assert chosen == [formatted(golds[0]), formatted("-1"), formatted(golds[3])]
    assert [row["correct"] for row in rows] == [True, False, True]
    cfg = load_config(repo_root / "configs/smoke.yaml")
    tok = models.load_tokenizer(read_run({}), str(embedded_model_dir))
    prompts = build_problems(cfg, tok, run=read_run(cfg), dataset=test_file, limit=4)
    assert [row["messages"][:-1] for row in rows] == [prompts[i].messages for i in (0, 1, 3)]
    assert all(row["messages"][-1]["role"] == "assistant" for row in rows)


def test_keep_replies_refuses_plain_text_prompts_by_name():
    """A plain-text prompt cannot become a chat SFT row: a clear error, not a row of characters."""
    from axolotl_grpo_plugin.errors import PluginError
    from axolotl_grpo_plugin.evaluate.rejection import kept_replies

    records = [{"problem": 0, "kind": "greedy", "messages": "Question: 2+2?", "strict_format": True,
                "completion": formatted("4"), "correct": True}]
    with pytest.raises(PluginError, match=r"--keep-replies: problem 0's prompt is plain text.*Fix: a dataset transform"):
        kept_replies(records)


def test_correct_reward_falls_back_and_can_be_chosen(smoke_cfg):
    from axolotl_grpo_plugin.sampling.scoring import correctness_reward, load_rewards

    rewards = load_rewards(read_run(smoke_cfg))
    assert correctness_reward(rewards).name == "correctness_reward_func"
    assert correctness_reward(rewards, "int").name == "int_reward_func"
    assert correctness_reward(rewards[1:]).name == rewards[1].name
    with pytest.raises(EvalError, match="not one of the config's rewards"):
        correctness_reward(rewards, "nope")


@pytest.mark.parametrize("tool", ["evaluate", "probe"])
def test_an_unknown_correct_reward_lists_the_names_a_config_uses_and_the_fix(tool, repo_root, embedded_model_dir,
                                                                             capsys):
    from importlib import import_module

    main = import_module(f"axolotl_grpo_plugin.commands.{tool}").main
    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--correct-reward", "nope"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (  # the flag as typed (evaluate once said `correct_reward`)
        "error: --correct-reward = 'nope' is not one of the config's rewards. Fix: name one of correctness, int, "
        "strict_format, soft_format, xmlcount, or leave it out to judge with correctness\n")


@pytest.mark.parametrize("argv, said", [
    (["--dataset", "{tmp}/missing.jsonl"], "--dataset = '{tmp}/missing.jsonl': file not found"),
    (["--samples", "-1"], "argument --samples: '-1' must be at least 0. Fix: 0 for greedy only"),
    (["--limit", "0"], "argument --limit: '0' must be at least 1. Fix: "),
])
def test_evaluate_errors_name_the_flag_as_typed(argv, said, repo_root, embedded_model_dir, tmp_path, capsys):
    """The CLI's errors once named the Python arguments (`dataset = ...`) the user never typed."""
    from axolotl_grpo_plugin.commands.evaluate import main

    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--out", str(tmp_path / "out"),
            "--no-progress", *[a.format(tmp=tmp_path) for a in argv]]
    assert cli_exit(main, argv) == 2
    err = capsys.readouterr().err
    assert f"error: {said.format(tmp=tmp_path)}" in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("judge", ["countdown_reward_func", "math_boxed_reward_func", "by_data_source"])
def test_a_task_accuracy_reward_judges_wherever_it_is_listed(judge):
    """Issue 27: with no reward named *correct*, the first listed judged (a format reward listed
    first made accuracy = format); the task rewards by_data_source routes to judge now, as
    observe/accuracy does (registry/correctness.py)."""
    from axolotl_grpo_plugin.sampling.scoring import Reward, correctness_reward

    rewards = [Reward(name, print) for name in ("strict_format_reward_func", judge, "xmlcount_reward_func")]
    assert correctness_reward(rewards).name == judge


# ---------------------------------------------------------------- pass@k and bootstrap


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (4, 1, 1, 1 / 4),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (3, 0, 2, 0.0),
        (3, 3, 1, 1.0),
        (4, 3, 2, 1.0),  # fewer wrong samples than k: some draw is right
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_matches_the_binomial_form():
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_pass_at_k_is_stable_for_many_samples_and_rejects_bad_input():
    assert 0 < pass_at_k(10_000, 3, 100) < 1
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    assert report_ks(1) == [1] and report_ks(6) == [1, 2, 4, 6] and report_ks(8) == [1, 2, 4, 8]


def test_paired_bootstrap_interval():
    a = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    b = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    diff, low, high = paired_bootstrap(a, b, n_boot=500, seed=0)
    assert diff == pytest.approx(sum(a) / 8 - sum(b) / 8)
    assert low <= diff <= high and low < high
    assert paired_bootstrap(a, a, n_boot=200) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------- determinism, limit, outputs


def test_limit_and_determinism_under_a_seed(sampled_run, smoke_cfg, embedded_model_dir, test_file):
    assert sampled_run.n_problems == 4
    again = evaluate(smoke_cfg, str(embedded_model_dir), dataset=test_file, limit=4, samples=3,
                     seed=1, **FAST)
    assert again.records == sampled_run.records
    other = evaluate(smoke_cfg, str(embedded_model_dir), dataset=test_file, limit=4, samples=3,
                     seed=2, **FAST)
    greedy = lambda r: [x["completion"] for x in r.records if x["kind"] == "greedy"]  # noqa: E731
    sampled = lambda r: [x["completion"] for x in r.records if x["kind"] == "sample"]  # noqa: E731
    assert greedy(other) == greedy(sampled_run)  # greedy ignores the seed
    assert sampled(other) != sampled(sampled_run)


def test_outputs_and_comparison(sampled_run, tmp_path):
    summary_path, samples_path = write_results(sampled_run, tmp_path / "out")
    summary = json.loads(summary_path.read_text())
    assert summary["n_problems"] == 4 and summary["pass_at_k"] == sampled_run.pass_at_k
    lines = samples_path.read_text().splitlines()
    assert len(lines) == len(sampled_run.records)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp left
    table = compare(sampled_run, sampled_run, n_boot=100)
    assert table["accuracy"]["diff"] == 0.0 and set(table) >= {"accuracy", "pass@1", "pass@2"}


# ---------------------------------------------------------------- end of training hook


def test_eval_at_end_settings_and_rank():
    assert hook.settings(read_run({"grpo_plugin": None})) is None
    assert hook.settings(read_run({"grpo_plugin": {"eval_at_end": True}})) == {}
    assert hook.settings(read_run({"grpo_plugin": {"eval_at_end": {"limit": 3, "dataset": None}}})) == {"limit": 3}
    assert hook.evaluate_at_end({"grpo_plugin": {"eval_at_end": True}}, read_run({"grpo_plugin": {"eval_at_end": True}}), rank=1) is None


def test_eval_at_end_schema_rejects_unknown_keys():
    from pydantic import ValidationError

    from axolotl_grpo_plugin.config.args import GRPOPluginSettings

    parsed = GRPOPluginSettings(eval_at_end={"samples": 2, "limit": 8})
    assert parsed.eval_at_end.samples == 2
    with pytest.raises(ValidationError):
        GRPOPluginSettings(eval_at_end={"sample": 2})


def test_eval_at_end_evaluates_output_dir_and_logs(smoke_cfg, embedded_model_dir, test_file, tmp_path):
    import shutil

    output_dir = tmp_path / "run"
    shutil.copytree(embedded_model_dir, output_dir)
    cfg = {**smoke_cfg, "output_dir": str(output_dir),
           "grpo_plugin": {"eval_at_end": {"dataset": test_file, "limit": 2, "samples": 0,
                                           "max_new_tokens": 4}}}
    logged = []

    class Tracker:
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(logs)

    result = hook.evaluate_at_end(cfg, read_run(cfg), hook.Trackers(state=object(), callbacks=[Tracker()]), rank=0)
    assert result.n_problems == 2
    assert json.loads((output_dir / "eval-test.json").read_text())["accuracy"] == result.accuracy
    assert (output_dir / "eval-test-samples.jsonl").is_file()
    assert logged == [result.metrics("test_")]
    correctness = logged[0]["test_rewards/correctness_reward_func/mean"]
    assert correctness == result.reward_means["correctness_reward_func"]


def test_named_chat_template_is_resolved_as_axolotl_does(smoke_cfg, tokenizer, test_file):
    from axolotl.utils.chat_templates import get_chat_template

    cfg = {**smoke_cfg, "chat_template": "qwen_25"}
    (problem,) = build_problems(cfg, tokenizer, run=read_run(cfg), dataset=test_file, limit=1)
    expected = tokenizer.apply_chat_template(problem.messages, chat_template=get_chat_template("qwen_25"),
                                             add_generation_prompt=True, tokenize=False)
    assert problem.text == expected and "You are Qwen" in problem.text  # its default system turn


def test_a_jinja_template_alone_is_used_as_axolotl_uses_it(smoke_cfg, tokenizer, test_file):
    """`chat_template_jinja` without `chat_template`: Axolotl's schema picks `jinja`."""
    jinja = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
             "{% if add_generation_prompt %}[assistant] {% endif %}")
    cfg = {k: v for k, v in smoke_cfg.items() if k != "chat_template"} | {"chat_template_jinja": jinja}
    (problem,) = build_problems(cfg, tokenizer, run=read_run(cfg), dataset=test_file, limit=1)
    assert problem.text.startswith("[user] Respond in the following format") and problem.text.endswith("[assistant] ")


def test_a_template_that_cannot_render_is_a_clear_error(smoke_cfg, tokenizer, test_file):
    cfg = {**smoke_cfg, "chat_template": "llama3"}  # needs a bos_token the tiny tokenizer lacks
    with pytest.raises(EvalError, match="chat_template 'llama3' cannot render"):
        build_problems(cfg, tokenizer, run=read_run(cfg), dataset=test_file, limit=1)


def test_eval_at_end_without_held_out_rows_fails_at_register(smoke_cfg, test_file):
    """A config check (checks.check_eval_at_end), so `check` refuses it too."""
    from axolotl_grpo_plugin.check.trainer import check_eval_at_end
    from axolotl_grpo_plugin.system.launch import Launch

    def keys(cfg):
        return [p.key for p in check_eval_at_end(read_run(cfg), Launch())]

    assert keys({**smoke_cfg, "grpo_plugin": {"eval_at_end": True}}) == ["grpo_plugin.eval_at_end.split"]
    assert keys({**smoke_cfg, "grpo_plugin": {"eval_at_end": {"dataset": "./nope.jsonl"}}}) == \
        ["grpo_plugin.eval_at_end.dataset"]
    assert keys({**smoke_cfg, "grpo_plugin": {"eval_at_end": {"dataset": test_file}}}) == []
    assert keys({**smoke_cfg, "test_datasets": [{"path": test_file, "type": "gsm8k"}],
                 "grpo_plugin": {"eval_at_end": {}}}) == []


@pytest.mark.integration
@pytest.mark.slow
def test_axolotl_train_evaluates_at_end(repo_root, embedded_model_dir, test_file, tmp_path):
    """`axolotl train` with `grpo_plugin.eval_at_end`: the saved model is evaluated and
    the metrics reach the trainer's trackers (TensorBoard here, as W&B would)."""
    import yaml
    from conftest import run_axolotl_train

    cfg = yaml.safe_load((repo_root / "configs" / "smoke.yaml").read_text())
    cfg.update(
        base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"), max_steps=2,
        use_tensorboard=True,
        grpo_plugin={"eval_at_end": {"dataset": test_file, "limit": 4, "samples": 2,
                                     "max_new_tokens": 8}},
    )
    cfg["datasets"][0]["path"] = str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(config, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "eval-test.json").read_text())
    assert summary["n_problems"] == 4 and set(summary["pass_at_k"]) == {"pass@1", "pass@2"}
    report = proc.stdout.split("grpo_plugin.eval_at_end:\n", 1)[-1]
    assert "accuracy" in report and "pass@2" in report
    events = list((tmp_path / "out").rglob("events.out.tfevents*"))
    assert any(b"test/accuracy" in p.read_bytes() for p in events)  # tracker tag of test_accuracy


def test_eval_at_end_settings_from_axolotls_dictdefault():
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault({"grpo_plugin": {"eval_at_end": {"limit": 3, "split": "test", "dataset": None}}})
    assert hook.settings(read_run(cfg)) == {"limit": 3, "split": "test"}


@pytest.mark.parametrize(("tokenizer_name", "template"), [("qwen2.5-instruct", "qwen_25"),
                                                         ("llama-3-instruct", "llama3")])
def test_real_tokenizers_tokenize_prompts_as_trl_does(shared_dir, repo_root, tokenizer_name, template):
    """GSM8K test prompts with real chat templates: one BOS (from the template, none
    added by tokenizing), the ids TRL's GRPOTrainer would feed the model."""
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(shared_dir / "tokenizers" / tokenizer_name)
    cfg = {**load_config(repo_root / "configs" / "gsm8k.yaml"), "chat_template": template}
    problems = build_problems(cfg, tok, run=read_run(cfg), dataset=str(shared_dir / "data/gsm8k/test.jsonl"), limit=3)
    rows = raw_rows(str(shared_dir / "data/gsm8k/test.jsonl"), 3)
    for problem, row in zip(problems, rows):
        expected = transform_row(row)
        trl_ids = tok.apply_chat_template(
            conversation=[expected["prompt"]], chat_template=get_chat_template(template),
            add_generation_prompt=True, tokenize=True, return_dict=True,
        )["input_ids"][0]
        assert problem.input_ids == list(trl_ids)
        assert problem.columns["answer"] == expected["answer"]
        if tok.bos_token_id is not None:
            assert problem.input_ids.count(tok.bos_token_id) == 1


def test_cli_writes_outputs_and_compares_with_a_baseline(repo_root, embedded_model_dir, test_file,
                                                         tmp_path, capsys):
    from axolotl_grpo_plugin.commands.evaluate import main

    out = tmp_path / "out"
    code = main([str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir),
                 "--baseline", str(embedded_model_dir), "--dataset", test_file, "--limit", "3",
                 "--samples", "2", "--max-new-tokens", "4", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((out / "eval-test.json").read_text())
    assert summary["n_problems"] == 3 and summary["config"].endswith("smoke.yaml")
    assert len((out / "eval-test-samples.jsonl").read_text().splitlines()) == 3 * (1 + 2)
    assert (out / "baseline" / "eval-test.json").is_file()
    table = json.loads((out / "eval-test-vs-baseline.json").read_text())["metrics"]
    assert table["accuracy"]["diff"] == 0.0  # the same model on the same prompts and seeds
    assert "95% CI" in printed and "pass@2" in printed


def test_a_missing_baseline_is_named_before_the_model_is_evaluated(repo_root, embedded_model_dir, test_file,
                                                                  tmp_path, capsys):
    from axolotl_grpo_plugin.commands.evaluate import main

    out, missing = tmp_path / "out", str(tmp_path / "no-baseline")
    code = main([str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--baseline", missing,
                 "--dataset", test_file, "--limit", "1", "--samples", "0", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err == (f"error: --baseline = {missing!r}: no local folder {missing} (relative paths start "
                                          f"at {Path.cwd()}). Fix: pass a checkpoint directory or a Hub id "
                                          "(org/name) as --baseline\n")
    assert not out.exists() and "model:" not in captured.out  # --model was not evaluated first


def test_a_limited_run_reproduces_the_start_of_a_longer_one(sampled_run, smoke_cfg, embedded_model_dir,
                                                            test_file):
    shorter = evaluate(smoke_cfg, str(embedded_model_dir), dataset=test_file, limit=2, samples=3,
                       seed=1, **FAST)
    assert shorter.records == [r for r in sampled_run.records if r["problem"] < 2]


def test_custom_rewards_get_trl_arguments(smoke_cfg, tokenizer, test_file, tmp_path, monkeypatch):
    """An import-path reward sees chat-shaped completions, the prompts and the dataset
    columns, as under GRPOTrainer; one without **kwargs still gets what it names."""
    (tmp_path / "my_rewards.py").write_text(
        "seen = []\n"
        "def shape_reward(prompts, completions, answer, completion_ids, trainer_state, **kwargs):\n"
        "    seen.append(dict(prompt=prompts[0], completion=completions[0], answer=answer[0]))\n"
        "    return [float(len(ids)) for ids in completion_ids]\n"
        "def strict_reward(completions, answer):\n"
        "    return [None for _ in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {**smoke_cfg, "trl": {**smoke_cfg["trl"],
                               "reward_funcs": ["my_rewards.shape_reward", "my_rewards.strict_reward"]}}
    monkeypatch.setattr(models, "make_generator", lambda *a, **k: ScriptedGenerator(
        lambda i, s: ["abc"] * s.n))
    result = evaluate(cfg, "scripted", tokenizer=tokenizer, dataset=test_file, limit=2, samples=0,
                      progress=False)
    import my_rewards

    first = transform_row(raw_rows(test_file, 1)[0])
    assert my_rewards.seen[0] == {"prompt": first["prompt"], "answer": first["answer"],
                                  "completion": [{"role": "assistant", "content": "abc"}]}
    assert result.reward_means["shape_reward"] == 3.0
    assert math.isnan(result.reward_means["strict_reward"])
    assert result.correct_reward == "shape_reward"  # no reward named *correct*: the first one


def test_evaluate_loads_transforms_as_axolotl_and_stats_do(smoke_cfg, tokenizer, test_file, tmp_path, monkeypatch):
    """Issue 13: one transform loader. A user transform returning `(fn, {"batched": True})`
    with a `tokenizer` argument trains (Axolotl's RL loader) and is counted by stats; evaluate
    used to call it row by row without the tokenizer and fail."""
    (tmp_path / "batched_transform.py").write_text(
        "def load(cfg, dataset_idx=0):\n"
        "    def fn(batch, tokenizer):\n"
        "        assert tokenizer is not None and isinstance(batch['question'], list)\n"
        "        return {'prompt': [[{'role': 'user', 'content': q}] for q in batch['question']],\n"
        "                'answer': [a.split('####')[-1].strip() for a in batch['answer']]}\n"
        "    return fn, {'batched': True, 'remove_columns': '__all__'}\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {**smoke_cfg, "datasets": [{**smoke_cfg["datasets"][0], "type": "batched_transform.load"}]}
    problems = build_problems(cfg, tokenizer, run=read_run(cfg), split="train", limit=3)
    rows = raw_rows(str(cfg["datasets"][0]["path"]), 3)
    assert [p.messages[0]["content"] for p in problems] == [r["question"] for r in rows]
    assert problems[0].columns["answer"] == rows[0]["answer"].split("####")[-1].strip()


# ---------------------------------------------------------------- flags checked before any work


def _no_evaluation(monkeypatch):
    monkeypatch.setattr(core, "evaluate", lambda *a, **k: pytest.fail("evaluated before the flags were checked"))


def _tmp_smoke(tmp_path, repo_root, embedded_model_dir) -> Path:
    """smoke.yaml and its dataset copied into tmp_path (the dataset as data.jsonl, an absolute path)."""
    data = tmp_path / "data.jsonl"
    data.write_bytes((repo_root / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl").read_bytes())
    cfg = load_config(repo_root / "configs" / "smoke.yaml")
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(data)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(("flag", "target", "what"), [
    ("--keep-replies", "held.jsonl", "the --dataset file"),
    ("--keep-replies", "data.jsonl", "its dataset datasets[0].path"),
    ("--keep-replies", "smoke.yaml", "the config"),
    ("--out", "smoke.yaml", "the config"),
])
def test_an_output_that_is_one_of_the_inputs_is_refused(flag, target, what, repo_root, embedded_model_dir,
                                                       test_file, tmp_path, monkeypatch, capsys):
    """`--keep-replies D` with `--dataset D` truncated the dataset to 0 bytes after the evaluation."""
    from axolotl_grpo_plugin.commands.evaluate import main

    _no_evaluation(monkeypatch)
    config = _tmp_smoke(tmp_path, repo_root, embedded_model_dir)
    (tmp_path / "held.jsonl").write_bytes(Path(test_file).read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.chdir(tmp_path)
    argv = [str(config), "--model", str(embedded_model_dir), "--dataset", "held.jsonl", flag, target, "--no-progress"]
    if flag == "--keep-replies":
        argv += ["--out", "out"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} {target}: is {what}") and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before


@pytest.mark.parametrize(("argv", "said"), [
    (["--out", "{tmp}/afile"], "--out {tmp}/afile: is a file, not a folder"),
    (["--out", "{tmp}/afile/out"], "--out {tmp}/afile/out: cannot write eval-test.json there"),
    (["--out", "{tmp}/o", "--keep-replies", "{tmp}/afile/k.jsonl"],
     "--keep-replies {tmp}/afile/k.jsonl: {tmp}/afile is a file, not a folder"),
    (["--out", "{tmp}/o", "--keep-replies", "{tmp}/o"], "--keep-replies {tmp}/o: is a folder"),
])
def test_an_unwritable_output_is_named_before_the_evaluation(argv, said, repo_root, embedded_model_dir, tmp_path,
                                                            monkeypatch, capsys):
    """They failed with FileExistsError / FileNotFoundError tracebacks after the whole evaluation."""
    from axolotl_grpo_plugin.commands.evaluate import main

    _no_evaluation(monkeypatch)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "o").mkdir()
    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--no-progress",
            *[a.format(tmp=tmp_path) for a in argv]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said.format(tmp=tmp_path)}") and "Traceback" not in err


def test_a_baseline_folder_without_a_model_is_named_before_any_work(repo_root, embedded_model_dir, tmp_path,
                                                                    monkeypatch, capsys):
    from axolotl_grpo_plugin.commands.evaluate import main

    _no_evaluation(monkeypatch)
    (tmp_path / "empty").mkdir()
    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--baseline",
            str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: --baseline {tmp_path / 'empty'}: not a model folder")


def test_a_failing_baseline_keeps_the_good_outputs(repo_root, embedded_model_dir, tmp_path, monkeypatch, capsys):
    """The main model's results replaced DIR/eval-test*.json(l) before the baseline failed."""
    from axolotl_grpo_plugin.commands.evaluate import main

    def fake(config, model, **options):
        if model == "org/base":
            raise EvalError("the baseline broke")
        return object()  # never written: the baseline fails first

    monkeypatch.setattr(core, "evaluate", fake)
    monkeypatch.setattr(models, "check_model", lambda *a, **k: None)  # org/base: a Hub id, offline here
    out = tmp_path / "out"
    out.mkdir()
    good = {name: f"good {name}\n" for name in ("eval-test.json", "eval-test-samples.jsonl")}
    for name, text in good.items():
        (out / name).write_text(text)
    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--baseline", "org/base",
            "--out", str(out), "--keep-replies", str(tmp_path / "k.jsonl"), "--no-progress", "--verbose"]
    assert main(argv) == 2
    assert "the baseline broke" in capsys.readouterr().err
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == good
    assert not (tmp_path / "k.jsonl").exists()


@pytest.mark.parametrize(("argv", "said"), [
    (["--max-new-tokens", "-3"], "argument --max-new-tokens: '-3' must be at least 1. Fix: "),
    (["--max-new-tokens", "0"], "argument --max-new-tokens: '0' must be at least 1. Fix: "),
    (["--batch-size", "0"], "argument --batch-size: '0' must be at least 1. Fix: "),
    (["--limit", "0"], "argument --limit: '0' must be at least 1. Fix: "),
    (["--device", "nope"], "--device = 'nope': unknown device. Fix: use auto, cpu, cuda or cuda:N"),
])
def test_bad_numbers_and_devices_are_refused_at_parsing(argv, said, repo_root, monkeypatch, capsys):
    """`--max-new-tokens -3` was a transformers traceback after loading; 0 was silently the default."""
    from axolotl_grpo_plugin.commands import flags
    from axolotl_grpo_plugin.commands.evaluate import main

    monkeypatch.setattr(flags, "run_quietly", lambda *a, **k: pytest.fail("refused only after parsing"))
    assert cli_exit(main, [str(repo_root / "configs/smoke.yaml"), "--model", "m", *argv]) == 2
    assert f"error: {said}" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("tool", ["evaluate", "probe"])
def test_cuda_without_a_gpu_is_refused_with_the_fix(tool, repo_root, embedded_model_dir, tmp_path, monkeypatch,
                                                    capsys):
    from importlib import import_module

    import torch

    from axolotl_grpo_plugin.probe import core as probe_core

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_evaluation(monkeypatch)
    monkeypatch.setattr(probe_core, "probe", lambda *a, **k: pytest.fail("probed before --device was checked"))
    main = import_module(f"axolotl_grpo_plugin.commands.{tool}").main
    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--device", "cuda",
            "--no-progress"] + (["--out", str(tmp_path / "out")] if tool == "evaluate" else [])
    assert main(argv) == 2
    assert capsys.readouterr().err == "error: --device cuda: no CUDA GPU here; use cpu or auto\n"


@pytest.mark.parametrize(("model", "said"), [
    ("bad/nodir", "no local folder bad/nodir, and as a Hub id it cannot be downloaded: the Hub is offline"),
    ("./nodir", "no local folder ./nodir (relative paths start at"),
    ("a/b/c", "no local folder a/b/c (relative paths start at"),
    ("afile/sub", "no local folder afile/sub (relative paths start at"),
    ("~nosuchuser-grpo/model", "no local folder ~nosuchuser-grpo/model (relative paths start at"),  # was a traceback
])
def test_a_missing_model_path_is_not_sent_to_the_hub(model, said, repo_root, tmp_path, monkeypatch, capsys):
    """`--model bad/nodir` answered "We couldn't connect to 'https://huggingface.co'"."""
    from huggingface_hub import constants

    from axolotl_grpo_plugin.commands.evaluate import main

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").mkdir()
    assert main([str(repo_root / "configs/smoke.yaml"), "--model", model, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --model = {model!r}: {said}") and err.count("Fix:") == 1


def test_a_tokenizer_that_does_not_load_names_a_fix_the_command_has(repo_root, tmp_path, capsys):
    """The fix said `pass --tokenizer DIR` (evaluate and probe have no such flag), twice."""
    from axolotl_grpo_plugin.commands.probe import main

    cfg = load_config(repo_root / "configs" / "smoke.yaml")
    cfg["base_model"] = str(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    assert main([str(tmp_path / "smoke.yaml"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--tokenizer" not in err and err.count("Fix:") == 1 and err.count("cannot load a tokenizer") == 1
    assert "set `base_model:`" in err and "--model DIR" in err
