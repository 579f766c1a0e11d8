"""The embedded demo: an imperfect pre-trained base, cached and deterministic; a short
GRPO run through `axolotl train` whose rewards go up; and a held-out scorer that
judges with the very functions training used."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.demo import curves, heldout
from axolotl_grpo_plugin.embedded.pretrain import (
    BASE_DIR_NAME,
    PretrainSettings,
    build_base,
    corpus,
    response_for,
    unseen_questions,
)
from axolotl_grpo_plugin.embedded.problems import DEMO_TEMPLATES, final_answer, generate_problems
from axolotl_grpo_plugin.embedded.sample_data import DEMO_TEST_ROWS
from axolotl_grpo_plugin.transforms.gsm8k import build_prompt
from axolotl_grpo_rewards.gsm8k import REWARD_FUNCS, is_strict_format


# A few steps of a smaller model: enough to exercise the build, cheap enough for CI.
TINY = PretrainSettings(examples=200, steps=3, batch_size=4, hidden_size=32, layers=1,
                        heads=2, kv_heads=1, intermediate_size=64)


def weights_hash(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def test_base_build_is_deterministic(tmp_path):
    first = build_base(tmp_path / "a", seed=3, settings=TINY, progress=False)
    second = build_base(tmp_path / "b", seed=3, settings=TINY, progress=False)
    other_seed = build_base(tmp_path / "c", seed=4, settings=TINY, progress=False)
    assert first.model_dir.name == BASE_DIR_NAME
    assert weights_hash(first.model_dir) == weights_hash(second.model_dir)
    assert weights_hash(first.model_dir) != weights_hash(other_seed.model_dir)


def test_base_build_is_cached_and_rebuilt_when_the_recipe_changes(tmp_path):
    built = build_base(tmp_path, seed=0, settings=TINY, progress=False)
    weights = built.model_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    again = build_base(tmp_path, seed=0, settings=TINY, progress=False)
    assert not built.cached and again.cached
    assert weights.stat().st_mtime_ns == mtime  # the cached base was not written again
    changed = build_base(tmp_path, seed=0, settings=PretrainSettings(**(TINY.stamp() | {"steps": 2})),
                         progress=False)
    assert not changed.cached and weights.stat().st_mtime_ns != mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging dirs left behind"


def test_corpus_is_imperfect_on_purpose_and_never_sees_the_demo_problems():
    settings = PretrainSettings()
    pairs = corpus(PretrainSettings(examples=600), seed=0)
    responses = [response for _, response in pairs]
    strict = sum(map(is_strict_format, responses)) / len(responses)
    assert abs(strict - settings.strict_share) < 0.08
    held = unseen_questions()
    assert len(held) > DEMO_TEST_ROWS
    questions = {prompt[-1]["content"].rsplit("\n\n", 1)[1] for prompt, _ in pairs}
    assert questions and not questions & held
    # prompts are exactly what the gsm8k transform sends
    assert all(prompt == build_prompt(prompt[-1]["content"].rsplit("\n\n", 1)[1]) for prompt, _ in pairs[:20])


def test_about_half_the_solutions_stop_one_step_short_and_all_show_their_work():
    rows = generate_problems(600, seed=5, templates=DEMO_TEMPLATES)
    rng = random.Random(0)
    settings = PretrainSettings()
    responses = [response_for(row, rng, settings) for row in rows]
    finished = [heldout.last_number(text) == final_answer(row) for text, row in zip(responses, rows)]
    assert abs((1 - sum(finished) / len(rows)) - settings.stop_short_share) < 0.06
    for text, row, done in zip(responses, rows, finished):
        first_result = re.search(r"=(\d+)>>", row["answer"]).group(1)
        # a short solution reports its first step's result; a finished one writes both steps
        assert heldout.last_number(text) == (final_answer(row) if done else first_result)
        assert text.count(" = ") == (2 if done else 1)


def test_heldout_scorer_uses_the_training_reward_functions():
    from axolotl_grpo_plugin.demo import DEMO_CONFIG
    from axolotl_grpo_plugin.sampling.prompts import load_config
    from axolotl_grpo_plugin.sampling.scoring import load_rewards

    rewards = load_rewards(read_run(load_config(DEMO_CONFIG)))
    assert {r.func.__wrapped__ for r in rewards} == set(REWARD_FUNCS.values())
    for reward in rewards:
        # the same contained wrapper Axolotl imports during training
        name = next(k for k, f in REWARD_FUNCS.items() if f is reward.func.__wrapped__)
        assert reward.func is getattr(__import__("axolotl_grpo_plugin"), f"reward_{name}")


def test_heldout_scores_match_hand_computed_rewards(tmp_path, embedded_model_dir):
    """Through the evaluator on a random tiny model: the figures are those of its completions."""
    rows = heldout.HELDOUT_FILE.read_text(encoding="utf-8").splitlines()[:6]
    path = tmp_path / "six.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    scores, completions = heldout.evaluate(embedded_model_dir, path=path)
    answers = [final_answer(json.loads(line)) for line in rows]
    assert scores.problems == len(completions) == 6
    totals = [sum(f(completions=[c], answer=[a])[0] for f in REWARD_FUNCS.values())
              for c, a in zip(completions, answers)]
    assert scores.mean_total_reward == pytest.approx(sum(totals) / 6)
    assert scores.format_compliance == pytest.approx(sum(map(is_strict_format, completions)) / 6)
    right = [REWARD_FUNCS["correctness"]([c], [a])[0] > 0 for c, a in zip(completions, answers)]
    assert scores.accuracy == pytest.approx(sum(right) / 6)
    assert scores.any_layout_accuracy == pytest.approx(
        sum(heldout.last_number(c) == a for c, a in zip(completions, answers)) / 6)


def test_any_layout_accuracy_counts_answers_outside_the_tags():
    class Result:
        n_problems, format_compliance, accuracy, reward_mean = 3, 2 / 3, 1 / 3, 1.0
        records = [
            {"kind": "greedy", "answer": "4", "completion": "<reasoning>\n2+2 = 4\n</reasoning>\n<answer>\n4\n</answer>\n"},
            {"kind": "greedy", "answer": "4", "completion": "<answer>\n5\n</answer>"},
            {"kind": "sample", "answer": "4", "completion": "4"},
            {"kind": "greedy", "answer": "4", "completion": "2+2 = 4\nThe answer is 4."},
        ]

    scores, completions = heldout.scores_of(Result())
    assert len(completions) == 3 and scores.accuracy == pytest.approx(1 / 3)
    # the plain answer is right, just not where the reward looks for it; samples are not greedy
    assert scores.any_layout_accuracy == pytest.approx(2 / 3)


def test_heldout_set_is_the_full_bundled_test_split():
    import inspect

    rows = [json.loads(line) for line in heldout.HELDOUT_FILE.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == DEMO_TEST_ROWS and all(final_answer(row) for row in rows)
    assert inspect.signature(heldout.evaluate).parameters["path"].default == heldout.HELDOUT_FILE


@pytest.mark.parametrize("text, expected", [
    ("So the answer is 1,200.", "1200"), ("<answer>\n07\n</answer>", "7"), ("no digits", None),
    ("3+4 = 7 then 7*2 = 14", "14"),
])
def test_last_number(text, expected):
    assert heldout.last_number(text) == expected


def test_log_lines_are_parsed_without_eval():
    text = ("{'loss': '0.01', 'reward': '0.5', 'rewards/x/mean': '0.25'}\n"
            "{'loss': '0.02', 'reward': '__import__(\"os\")'}\n{'loss': '0.0', 'reward': '1.5'}")
    steps = curves.parse_log_lines(text)
    assert [step["reward"] for step in steps] == [0.5, 1.5]


def test_plot_is_written(tmp_path):
    history = [{"reward": i / 10, "rewards/correctness_reward_func/mean": i / 20} for i in range(12)]
    path = curves.plot(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_short_demo_run_raises_the_reward(tmp_path, repo_root):
    """A short GRPO run from the real base: rewards in the last third beat the first third."""
    from axolotl_grpo_plugin.demo.run import run_demo

    result = run_demo(seed=0, steps=30, output_dir=tmp_path / "run",
                      base_out=repo_root / ".cache" / "embedded", echo=False,
                      score_heldout=False)
    rewards = [entry["reward"] for entry in result.history]
    assert len(rewards) == 30
    first, last = curves.third_means(rewards)
    assert last > first + 0.1, rewards
    assert result.plot_path and result.plot_path.exists()


def test_response_loss_is_the_models_own_loss(embedded_model_dir):
    """Logits only where a label is: the same loss (and so the same training) as the model's."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_grpo_plugin.embedded.pretrain import _batches, _encode, response_loss

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    encoded = _encode(tokenizer, corpus(PretrainSettings(examples=64), seed=0))
    input_ids, labels = next(_batches(encoded, 8, tokenizer.pad_token_id, random.Random(0)))
    assert (labels[:, 0] == -100).all() and (labels != -100).any()
    with torch.no_grad():
        assert response_loss(model, input_ids, labels).item() == pytest.approx(
            model(input_ids=input_ids, labels=labels).loss.item(), rel=1e-5)


def test_sampled_pass_at_counts_any_layout_per_problem():
    """pass@1 is the mean share of right samples, pass@n the share of problems with one right."""
    def sample(problem, text):
        return {"kind": "sample", "problem": problem, "answer": "7", "completion": text}

    class Sampled:
        records = [{"kind": "greedy", "problem": 0, "answer": "7", "completion": "7"},
                   sample(0, "3+4 = 7. The answer is 7."), sample(0, "The answer is 3."),
                   sample(1, "<answer>\n5\n</answer>"), sample(1, "no number at all")]

    n, problems, one, every = heldout.sampled_pass_at(Sampled())
    assert (n, problems) == (2, 2)
    assert one == pytest.approx((1 / 2 + 0) / 2) and every == pytest.approx(1 / 2)
    assert heldout.sampled_pass_at(type("Greedy", (), {"records": Sampled.records[:1]})()) is None


def test_table_shows_pass_at_k_beside_the_greedy_figures():
    from axolotl_grpo_plugin.demo.run import DemoResult, table

    before = heldout.Scores(256, 0.0, 0.0, 0.1, 0.08, samples=8, sampled_problems=64, pass_at_1=0.19, pass_at_k=0.78)
    after = heldout.Scores(256, 1.0, 0.64, 3.0, 0.64, samples=8, sampled_problems=64, pass_at_1=0.57, pass_at_k=0.84)
    text = table(DemoResult(before, after, [], Path("."), None))
    assert "sampled pass@8, any layout" in text and "19.0%" in text and "84.0%" in text
    assert "first 64 problems" in text
    without = table(DemoResult(heldout.Scores(256, 0.0, 0.0, 0.1, 0.08), heldout.Scores(256, 1.0, 0.6, 3.0, 0.6),
                               [], Path("."), None))
    assert "pass@" not in without


def test_the_first_base_build_keeps_import_chatter_off_the_screen(tmp_path, capfd, monkeypatch):
    """On a fresh machine the demo builds its base first: what the imports print (torchao's
    "Failed to load ... .so") goes to the demo's log, the build's progress bar to the screen."""
    import os

    from axolotl_grpo_plugin.demo import run
    from axolotl_grpo_plugin.embedded import pretrain

    def build(out, seed, force, progress):
        os.write(2, b"Failed to load torchao/_C_mxfp8.so\n")
        with pretrain._progress(1, progress) as bar:
            bar.update(1)
        return "built"

    monkeypatch.setattr(run, "build_base", build)
    log = tmp_path / "demo" / "demo.log"
    assert run.build_base_quietly(tmp_path, 0, False, log, echo=False) == "built"
    shown = capfd.readouterr().err
    assert "pre-training base" in shown and "Failed to load" not in shown
    assert "Failed to load" in log.read_text()
    assert run.build_base_quietly(tmp_path, 0, False, log, echo=True) == "built"  # --verbose shows it all
    assert "Failed to load" in capfd.readouterr().err
