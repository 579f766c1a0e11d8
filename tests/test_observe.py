"""Rollout log, learning metrics and the trainer hook, without a training run."""

from __future__ import annotations

import gzip
import json
import logging
import math
from collections import defaultdict, deque
from types import SimpleNamespace

import pytest

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.observe import attach, read_rollouts
from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter, log_files
from axolotl_grpo_plugin.rollouts.metrics import ReflectionMatcher, correct_verdicts, step_metrics


STRICT = "<reasoning>\nWe add 3 and 4.\n</reasoning>\n<answer>\n7\n</answer>\n"
SOFT_ONLY = "<reasoning>We add.</reasoning> <answer>7</answer>"
WRONG = "<reasoning>\nWait, 3 + 4 is 8.\n</reasoning>\n<answer>\n8\n</answer>\n"
PLAIN = "The answer is 7."


# --- metrics on hand-written completions -------------------------------------------------

def test_format_accuracy_length_and_reflection_rates():
    from axolotl_grpo_rewards.gsm8k import correctness_reward_func

    texts = [STRICT, SOFT_ONLY, WRONG, PLAIN]
    scored = {"correctness_reward_func": correctness_reward_func(completions=texts, answer=["7"] * 4)}
    metrics = step_metrics(texts, lengths=[10, 20, 30, 40], correct=correct_verdicts(scored))
    assert metrics["observe/format_strict"] == pytest.approx(2 / 4)  # STRICT, WRONG
    assert metrics["observe/format_soft"] == pytest.approx(3 / 4)  # all tagged ones
    assert metrics["observe/accuracy"] == pytest.approx(2 / 4)  # STRICT, SOFT_ONLY say 7
    assert metrics["observe/mean_length"] == pytest.approx(25.0)
    assert metrics["observe/reflection_rate"] == pytest.approx(1 / 4)  # WRONG has "Wait"


def test_no_verdicts_means_no_accuracy_and_missing_lengths_are_nan():
    metrics = step_metrics([STRICT], lengths=None)
    assert "observe/accuracy" not in metrics
    assert math.isnan(metrics["observe/mean_length"])


@pytest.mark.parametrize("names, requested, judge", [
    (["strict_format_reward_func", "correctness_reward_func"], None, "correctness_reward_func"),
    (["strict_format_reward_func", "countdown_reward_func"], None, "countdown_reward_func"),
    (["xmlcount_reward_func", "math_boxed_reward_func"], None, "math_boxed_reward_func"),
    (["strict_format_reward_func", "by_data_source"], None, "by_data_source"),
    (["my_accuracy", "correctness_reward_func"], None, "correctness_reward_func"),  # `correct` first
    (["strict_format_reward_func", "my_accuracy"], None, "my_accuracy"),
    (["correctness_reward_func", "int_reward_func"], "int", "int_reward_func"),
    (["correctness_reward_func", "int_reward_func"], "nope", "correctness_reward_func"),
    (["strict_format_reward_func", "soft_format_reward_func"], None, None),  # none judges answers
])
def test_the_verdict_is_the_correctness_rewards_by_the_evaluators_rule(names, requested, judge):
    scored = {name: [0.0, 0.0] for name in names}
    if judge:
        scored[judge] = [1.0, float("nan")]
    assert correct_verdicts(scored, requested) == ([True, False] if judge else None)


def test_a_correctness_reward_that_scored_nothing_gives_no_accuracy():
    assert correct_verdicts({"correctness_reward_func": [None, float("nan")]}) is None
    assert correct_verdicts({"correctness_reward_func": [-1.0, 0.0]}) == [False, False]


def test_chat_message_completions_are_not_counted_as_text():
    # TRL hands decoded strings to the hook; anything else must not raise
    metrics = step_metrics([None, 3, STRICT], lengths=[1, None, float("nan")])
    assert metrics["observe/format_strict"] == pytest.approx(1 / 3)
    assert metrics["observe/mean_length"] == pytest.approx(1.0)


@pytest.mark.parametrize("text", [
    "wait, that is off", "Hmm. WAIT.", "Let me  check\nthat", "I made a mistake above",
    "let’s go back", "That's wrong.", "On second thought, no",
])
def test_reflection_phrases_match_case_and_whitespace_insensitively(text):
    assert text in ReflectionMatcher()


@pytest.mark.parametrize("text", [
    "they waited an hour", "await the result", "awaiting", "let me checkout", "no tags here", "",
])
def test_reflection_phrases_need_whole_words(text):
    assert text not in ReflectionMatcher()


def test_configured_phrases_replace_the_defaults_and_report_the_first_span():
    matcher = ReflectionMatcher(["hmm", "recompute"])
    assert "wait" not in matcher
    assert matcher.first("So 5. Hmm, recompute: 6") == (6, 9)
    assert ReflectionMatcher([]).first("wait") is None


# --- the rollout log ---------------------------------------------------------------------

def _records(step, n=4):
    return [{"step": step, "completion": f"c{step}-{i}", "reward": float(i)} for i in range(n)]


def test_reader_skips_a_torn_last_line_and_keeps_everything_before(tmp_path):
    writer = RolloutLogWriter(tmp_path)
    writer.write_step(_records(1))
    writer.write_step(_records(2))
    writer.close()
    with open(tmp_path / "rollouts.jsonl", "ab") as f:
        f.write(b'{"step": 3, "completion": "torn mid-li')
    assert [(r["step"], r["completion"]) for r in read_rollouts(tmp_path)] == [
        (s, f"c{s}-{i}") for s in (1, 2) for i in range(4)]


def test_a_resumed_run_starts_after_a_torn_line(tmp_path):
    (tmp_path / "rollouts.jsonl").write_bytes(b'{"step": 1}\n{"step": 2, "compl')
    writer = RolloutLogWriter(tmp_path)
    writer.write_step(_records(3, n=1))
    writer.close()
    assert [r["step"] for r in read_rollouts(tmp_path)] == [1, 3]


def test_nan_rewards_are_written_as_null(tmp_path):
    writer = RolloutLogWriter(tmp_path)
    writer.write_step([{"step": 1, "reward": float("nan"), "rewards": {"a": float("inf")}}])
    writer.close()
    line = (tmp_path / "rollouts.jsonl").read_text()
    assert json.loads(line) == {"step": 1, "reward": None, "rewards": {"a": None}}


def test_rotation_gzips_parts_in_order_and_the_reader_joins_them(tmp_path):
    writer = RolloutLogWriter(tmp_path, max_mb=0.0005)  # ~524 bytes: rotate every step or two
    for step in range(1, 8):
        writer.write_step(_records(step))
    writer.close()
    parts = [p.name for p in log_files(tmp_path)]
    assert len(parts) > 2 and all(p.endswith(".jsonl.gz") for p in parts[:-1])
    with gzip.open(tmp_path / parts[0], "rt") as f:
        assert json.loads(f.readline())["step"] == 1
    assert [(r["step"], r["completion"]) for r in read_rollouts(tmp_path)] == [
        (s, f"c{s}-{i}") for s in range(1, 8) for i in range(4)]


def test_a_kill_during_rotation_leaves_every_line_readable_once(tmp_path):
    writer = RolloutLogWriter(tmp_path)
    writer.write_step(_records(1))
    writer.close()
    # killed after moving the live file aside, while gzipping it: staged part + partial temp
    (tmp_path / "rollouts.jsonl").rename(tmp_path / "rollouts.1.jsonl")
    (tmp_path / "rollouts.1.jsonl.gz.tmp").write_bytes(b"\x1f\x8b partial")
    writer = RolloutLogWriter(tmp_path, max_mb=0.0001)  # the resumed run rotates again
    writer.write_step(_records(2))
    writer.write_step(_records(3))
    writer.close()
    assert [p.name for p in log_files(tmp_path)] == [
        "rollouts.1.jsonl", "rollouts.2.jsonl.gz", "rollouts.3.jsonl.gz"]
    assert [r["step"] for r in read_rollouts(tmp_path)] == [1] * 4 + [2] * 4 + [3] * 4


def test_a_write_failure_is_reported_once_and_never_raised(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where output_dir should be")
    writer = RolloutLogWriter(blocker)
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        assert writer.write_step(_records(1)) is False
        assert writer.write_step(_records(2)) is False
    warnings = [r for r in caplog.records if "rollout log" in r.getMessage()]
    assert len(warnings) == 1 and "rollout_log: false" in warnings[0].getMessage()


# --- the trainer hook, on a stand-in with TRL's attributes --------------------------------

class FakeTrainer:
    """The parts of TRL's GRPOTrainer the hook reads, filled the way TRL fills them."""

    def __init__(self, output_dir, batches, names=("correctness_reward_func", "len_reward")):
        import torch

        self.reward_func_names = list(names)
        self.reward_weights = torch.tensor([1.0, 0.5])
        self.num_generations = 2
        self.state = SimpleNamespace(global_step=0)
        self.args = SimpleNamespace(output_dir=str(output_dir))
        self.model = SimpleNamespace(training=True)
        self.accelerator = SimpleNamespace(is_main_process=True, num_processes=1)
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        size = len(batches[0])
        self._logs = {"prompt": deque(maxlen=size), "completion": deque(maxlen=size),
                      "advantages": deque(maxlen=size),
                      "rewards": defaultdict(lambda: deque(maxlen=size))}
        self._batches = iter(batches)
        self.callbacks = []

    def add_callback(self, callback):  # transformers.Trainer.add_callback
        self.callbacks.append(callback)

    def _generate_and_score_completions(self, inputs):
        import torch

        batch = next(self._batches)
        for row in batch:
            self._logs["prompt"].append(row["prompt"])
            self._logs["completion"].append(row["completion"])
            self._logs["advantages"].append(row["advantage"])
            for name, value in zip(self.reward_func_names, row["rewards"]):
                self._logs["rewards"][name].append(value)
        return {"completion_mask": torch.tensor([[1] * row["length"] + [0] * (9 - row["length"])
                                                 for row in batch])}


def _batch(step):
    return [
        {"prompt": "Q1", "completion": STRICT, "rewards": [2.0, 1.0], "advantage": 0.7, "length": 5},
        {"prompt": "Q1", "completion": WRONG, "rewards": [0.0, float("nan")], "advantage": -0.7, "length": 9},
    ]


def test_the_hook_logs_each_scored_rollout_and_adds_metrics(tmp_path):
    trainer = FakeTrainer(tmp_path, [_batch(1), _batch(2)])
    assert attach(read_run({"grpo_plugin": None}), trainer) is not None
    inputs = [{"prompt": "Q1", "answer": "7"}, {"prompt": "Q1", "answer": "7"}]
    trainer._generate_and_score_completions(inputs)
    trainer.state.global_step = 1
    trainer._generate_and_score_completions(inputs)

    records = list(read_rollouts(tmp_path))
    assert [r["step"] for r in records] == [1, 1, 2, 2]
    first, second = records[:2]
    assert first["rewards"] == {"correctness_reward_func": 2.0, "len_reward": 1.0}
    assert first["reward"] == pytest.approx(2.0 + 0.5 * 1.0)
    assert second["rewards"]["len_reward"] is None and second["reward"] == 0.0
    assert (first["length"], second["length"]) == (5, 9)
    assert (first["advantage"], first["group"], second["group"]) == (0.7, 0, 0)
    assert first["answer"] == "7" and first["reflection"] is None
    assert WRONG[slice(*second["reflection"])] == "Wait"

    metrics = trainer._metrics["train"]
    assert metrics["observe/accuracy"] == [0.5, 0.5]
    assert metrics["observe/reflection_rate"] == [0.5, 0.5]
    assert metrics["observe/mean_length"] == [7.0, 7.0]


def test_the_hook_is_off_by_key_and_metrics_survive_without_the_log(tmp_path):
    trainer = FakeTrainer(tmp_path, [_batch(1)])
    assert attach(read_run({"grpo_plugin": {"rollout_log": False, "learning_metrics": False}}), trainer) is None
    trainer = FakeTrainer(tmp_path, [_batch(1)], names=("strict_format_reward_func", "len_reward"))
    attach(read_run({"grpo_plugin": {"rollout_log": False}}), trainer)
    trainer._generate_and_score_completions([{"prompt": "Q1"}, {"prompt": "Q1"}])
    assert not (tmp_path / "rollouts.jsonl").exists()
    assert "observe/accuracy" not in trainer._metrics["train"]  # no reward judges the answer
    assert trainer._metrics["train"]["observe/format_strict"] == [1.0]


def test_a_broken_trainer_state_is_reported_once_and_training_goes_on(tmp_path, caplog):
    trainer = FakeTrainer(tmp_path, [_batch(1), _batch(2)])
    attach(read_run({}), trainer)
    trainer._logs["advantages"] = deque(maxlen=1)  # TRL changed: the batch is not all there
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        out = trainer._generate_and_score_completions([{}, {}])
        trainer._generate_and_score_completions([{}, {}])
    assert "completion_mask" in out
    assert len([r for r in caplog.records if "observing the scored rollouts" in r.getMessage()]) == 1


class AsyncGRPOTrainer(FakeTrainer):
    """Axolotl 0.21's async trainer as the hook sees it: the main thread scores a batch the
    background thread generated in `_compute_deferred_scores`, popping the rows it carries."""

    def _compute_deferred_scores(self, rollout):
        rows = rollout.pop("_deferred_inputs")
        return FakeTrainer._generate_and_score_completions(self, rows)


def test_on_the_async_trainer_the_deferred_scoring_is_logged_with_its_rows(tmp_path):
    trainer = AsyncGRPOTrainer(tmp_path, [_batch(1), _batch(2)])
    assert attach(read_run({"grpo_plugin": None}), trainer) is not None
    rows = [{"prompt": "Q1", "answer": "7"}, {"prompt": "Q1", "answer": "7"}]
    trainer._compute_deferred_scores({"_deferred_inputs": rows, "_pending_policy_logps": True})
    trainer.state.global_step = 1
    trainer._compute_deferred_scores({"_deferred_inputs": rows})

    records = list(read_rollouts(tmp_path))
    assert [r["step"] for r in records] == [1, 1, 2, 2]
    assert [r["answer"] for r in records] == ["7"] * 4 and [r["length"] for r in records[:2]] == [5, 9]
    assert trainer._metrics["train"]["observe/accuracy"] == [0.5, 0.5]


def test_streaming_scores_on_the_async_trainer_turn_the_hook_off_with_a_warning(tmp_path, caplog):
    trainer = AsyncGRPOTrainer(tmp_path, [_batch(1)])
    trainer.args.streaming_partial_batch = True
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        assert attach(read_run({"grpo_plugin": {"step_time": False}}), trainer) is None
    assert "trl.streaming_partial_batch" in caplog.text


# --- observe/accuracy on other tasks: the run's own correctness reward, not GSM8K's (issue 27)

REASONING = "<reasoning>\nwork\n</reasoning>\n"
COUNTDOWN = {"prompt": "Use 3, 5, 25 to make 60", "numbers": [3, 5, 25], "target": 60, "data_source": "countdown"}


def _observed_accuracy(tmp_path, names, rows, completions, rewards):
    """observe/accuracy of one batch that TRL scored with `rewards` (name -> one value per row)."""
    batch = [{"prompt": row["prompt"], "completion": text, "rewards": [rewards[n][i] for n in names],
              "advantage": 0.0, "length": 3} for i, (row, text) in enumerate(zip(rows, completions))]
    trainer = FakeTrainer(tmp_path, [batch], names=names)
    attach(read_run({"grpo_plugin": {"rollout_log": False}}), trainer)
    trainer._generate_and_score_completions(rows)
    return trainer._metrics["train"].get("observe/accuracy")


def _gsm8k_verdicts(completions, golds):
    from axolotl_grpo_rewards.gsm8k import correctness_reward_func

    return [v > 0 for v in correctness_reward_func(completions=completions, answer=golds)]


def test_accuracy_on_countdown_is_the_countdown_rewards_verdict(tmp_path):
    from axolotl_grpo_rewards.countdown import countdown_reward_func
    from axolotl_grpo_rewards.gsm8k import strict_format_reward_func

    rows = [COUNTDOWN] * 3
    texts = [REASONING + "<answer>(25 - 5) * 3</answer>", REASONING + "<answer>25 * 3 - 5</answer>",
             REASONING + "<answer>60</answer>"]  # right; wrong; the target without an equation
    rewards = {"countdown_reward_func": countdown_reward_func(texts, numbers=[[3, 5, 25]] * 3, target=[60] * 3),
               "strict_format_reward_func": strict_format_reward_func(texts)}
    assert rewards["countdown_reward_func"] == [1.0, 0.0, 0.0]
    assert _gsm8k_verdicts(texts, [60] * 3) == [False, False, True]  # GSM8K's rule: the reverse
    accuracy = _observed_accuracy(tmp_path, ("countdown_reward_func", "strict_format_reward_func"),
                                  rows, texts, rewards)
    assert accuracy == [pytest.approx(1 / 3)]


def test_accuracy_on_math_is_the_math_rewards_verdict(tmp_path):
    from axolotl_grpo_rewards.gsm8k import strict_format_reward_func
    from axolotl_grpo_rewards.math_boxed import math_boxed_reward_func

    golds = ["\\frac{1}{2}", "3", "5"]
    rows = [{"prompt": "Q", "answer": gold, "data_source": "math"} for gold in golds]
    texts = ["So it is \\boxed{\\frac{1}{2}}.", REASONING + "<answer>\\boxed{3}</answer>",
             REASONING + "<answer>4</answer>"]
    rewards = {"math_boxed_reward_func": math_boxed_reward_func(texts, answer=golds),
               "strict_format_reward_func": strict_format_reward_func(texts)}
    assert rewards["math_boxed_reward_func"] == [1.0, 1.0, 0.0]
    assert _gsm8k_verdicts(texts, golds) == [False, False, False]
    accuracy = _observed_accuracy(tmp_path, ("strict_format_reward_func", "math_boxed_reward_func"),
                                  rows, texts, rewards)
    assert accuracy == [pytest.approx(2 / 3)]


def test_accuracy_on_a_mixed_run_judges_each_sample_by_its_own_task(tmp_path):
    from axolotl_grpo_plugin.registry.routing import by_data_source

    rows = [{"prompt": "Q1", "answer": "7", "data_source": "gsm8k"}, COUNTDOWN,
            {"prompt": "Q3", "answer": "\\frac{1}{2}", "data_source": "math"}]
    texts = [STRICT, REASONING + "<answer>(25 - 5) * 3</answer>", "So it is \\boxed{\\frac{1}{2}}."]
    columns = {key: [row.get(key) for row in rows] for key in ("answer", "numbers", "target", "data_source")}
    rewards = {"by_data_source": by_data_source(texts, **columns), "len_reward": [0.0] * 3}
    assert rewards["by_data_source"] == [2.0, 1.0, 1.0]
    assert _gsm8k_verdicts(texts, columns["answer"]) == [True, False, False]
    assert _observed_accuracy(tmp_path, ("by_data_source", "len_reward"), rows, texts, rewards) == [1.0]


def test_an_unsupported_trainer_gets_a_warning_not_an_error(caplog):
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        assert attach(read_run({}), SimpleNamespace()) is None
    assert "sync" in caplog.text
