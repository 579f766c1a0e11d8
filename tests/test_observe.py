"""Rollout log, learning metrics and the trainer hook, without a training run."""

from __future__ import annotations

import gzip
import json
import logging
import math
from collections import defaultdict, deque
from types import SimpleNamespace

import pytest

from axolotl_grpo_plugin.observe import attach, read_rollouts
from axolotl_grpo_plugin.observe.metrics import ReflectionMatcher, step_metrics
from axolotl_grpo_plugin.observe.rollout_log import RolloutLogWriter, log_files


STRICT = "<reasoning>\nWe add 3 and 4.\n</reasoning>\n<answer>\n7\n</answer>\n"
SOFT_ONLY = "<reasoning>We add.</reasoning> <answer>7</answer>"
WRONG = "<reasoning>\nWait, 3 + 4 is 8.\n</reasoning>\n<answer>\n8\n</answer>\n"
PLAIN = "The answer is 7."


# --- metrics on hand-written completions -------------------------------------------------

def test_format_accuracy_length_and_reflection_rates():
    texts = [STRICT, SOFT_ONLY, WRONG, PLAIN]
    metrics = step_metrics(texts, lengths=[10, 20, 30, 40], answers=["7", "7", "7", "7"])
    assert metrics["observe/format_strict"] == pytest.approx(2 / 4)  # STRICT, WRONG
    assert metrics["observe/format_soft"] == pytest.approx(3 / 4)  # all tagged ones
    assert metrics["observe/accuracy"] == pytest.approx(2 / 4)  # STRICT, SOFT_ONLY say 7
    assert metrics["observe/mean_length"] == pytest.approx(25.0)
    assert metrics["observe/reflection_rate"] == pytest.approx(1 / 4)  # WRONG has "Wait"


def test_no_answers_means_no_accuracy_and_missing_lengths_are_nan():
    metrics = step_metrics([STRICT], lengths=None)
    assert "observe/accuracy" not in metrics
    assert math.isnan(metrics["observe/mean_length"])


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
    assert attach({"grpo_plugin": None}, trainer) is not None
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
    assert attach({"grpo_plugin": {"rollout_log": False, "learning_metrics": False}}, trainer) is None
    trainer = FakeTrainer(tmp_path, [_batch(1)])
    attach({"grpo_plugin": {"rollout_log": False}}, trainer)
    trainer._generate_and_score_completions([{"prompt": "Q1"}, {"prompt": "Q1"}])
    assert not (tmp_path / "rollouts.jsonl").exists()
    assert "observe/accuracy" not in trainer._metrics["train"]  # no answer column
    assert trainer._metrics["train"]["observe/format_strict"] == [1.0]


def test_a_broken_trainer_state_is_reported_once_and_training_goes_on(tmp_path, caplog):
    trainer = FakeTrainer(tmp_path, [_batch(1), _batch(2)])
    attach({}, trainer)
    trainer._logs["advantages"] = deque(maxlen=1)  # TRL changed: the batch is not all there
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        out = trainer._generate_and_score_completions([{}, {}])
        trainer._generate_and_score_completions([{}, {}])
    assert "completion_mask" in out
    assert len([r for r in caplog.records if "observing the scored rollouts" in r.getMessage()]) == 1


def test_an_unsupported_trainer_gets_a_warning_not_an_error(caplog):
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        assert attach({}, SimpleNamespace()) is None
    assert "sync" in caplog.text
