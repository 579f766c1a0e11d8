"""The weight-sync guard: the config rule against TRL <= 1.9 colocate + sleep mode, and the
runtime watch on TRL's sampling/sampling_logp_difference (fake metric streams, then a real
transformers Trainer that must stop and save when the guard is set to stop)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import prepared

from axolotl_grpo_plugin.check.prepare import CHECKS
from axolotl_grpo_plugin.config.defaults import SLEEP_MODE_LAST_BROKEN_TRL, sleep_mode_loses_weights
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.system.launch import Launch
from axolotl_grpo_plugin.watch import sync_guard
from axolotl_grpo_plugin.watch.sync_guard import (
    MAX_KEY,
    MEAN_KEY,
    GuardSettings,
    WeightSyncWatch,
    check_sleep_mode,
)


pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]


def colocate_cfg(**trl) -> dict:
    cfg = yaml.safe_load((REPO / "configs" / "gsm8k-1gpu-colocate.yaml").read_text())
    cfg["trl"].update(trl)
    return cfg


# --- config rule ------------------------------------------------------------------

def test_the_rule_is_registered_with_the_other_checks():
    assert check_sleep_mode in CHECKS


@pytest.mark.parametrize("version", ["1.9.0", "1.9.3", "1.8.0", "0.29.1", "1.9.0.dev0", None, "garbage"])
def test_colocate_with_sleep_mode_is_refused_on_trl_up_to_1_9(version, monkeypatch):
    # None: the installed TRL's version cannot be read (whichever TRL runs the test)
    monkeypatch.setattr(sync_guard, "installed_trl_version", lambda: None)
    problems = check_sleep_mode(read_run(colocate_cfg(vllm_enable_sleep_mode=True)), Launch(), trl_version=version)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.key == "trl.vllm_enable_sleep_mode" and problem.value is True
    assert "huggingface/trl#5312" in problem.message and "base checkpoint" in problem.message
    assert "`trl.vllm_enable_sleep_mode: false`" in problem.fix


def test_unset_vllm_mode_is_colocate_in_trl_1_9():
    cfg = colocate_cfg(vllm_enable_sleep_mode=True)
    del cfg["trl"]["vllm_mode"]
    [problem] = check_sleep_mode(read_run(cfg), Launch(), trl_version="1.9.0")
    assert "`trl.vllm_mode` is unset" in problem.message


def test_trl_1_9_colocate_default_is_what_the_rule_assumes():
    from trl import GRPOConfig

    assert GRPOConfig.__dataclass_fields__["vllm_mode"].default == "colocate"


@pytest.mark.parametrize("trl, version", [
    ({"vllm_enable_sleep_mode": False}, "1.9.0"),
    ({"vllm_enable_sleep_mode": True, "vllm_mode": "server"}, "1.9.0"),
    ({"vllm_enable_sleep_mode": True, "use_vllm": False}, "1.9.0"),
    ({"vllm_enable_sleep_mode": True}, "1.10.0"),
    ({"vllm_enable_sleep_mode": True}, "2.0.0"),
])
def test_other_combinations_are_accepted(trl, version):
    assert check_sleep_mode(read_run(colocate_cfg(**trl)), Launch(), trl_version=version) == []


def test_version_boundary_is_one_fact():
    assert SLEEP_MODE_LAST_BROKEN_TRL == (1, 9)
    assert sleep_mode_loses_weights("1.9.99") and not sleep_mode_loses_weights("1.10.0")


def test_prepare_config_refuses_the_pair_with_the_installed_trl():
    if not sleep_mode_loses_weights(sync_guard.installed_trl_version()):
        pytest.skip("the installed TRL is past 1.9")
    with pytest.raises(GRPOConfigError) as info:
        prepared(colocate_cfg(vllm_enable_sleep_mode=True), Launch(processes=1, has_gpu=True))
    assert "trl.vllm_enable_sleep_mode = True" in str(info.value)
    prepared(colocate_cfg(), Launch(processes=1, has_gpu=True))  # the shipped config passes


# --- runtime watch: fake metric streams -------------------------------------------

def stream(means, maxes=None, lrs=None):
    maxes = maxes or [None] * len(means)
    lrs = lrs or [1e-6] * len(means)
    for step, (mean, peak, lr) in enumerate(zip(means, maxes, lrs), start=1):
        logs = {"loss": 0.01, "reward": 0.5, "learning_rate": lr}
        if mean is not None:
            logs[MEAN_KEY] = mean
        if peak is not None:
            logs[MAX_KEY] = peak
        yield step, logs


def fired_at(watch: WeightSyncWatch, means, maxes=None, lrs=None) -> list[int]:
    return [step for step, logs in stream(means, maxes, lrs) if watch.observe(logs, step)]


# Healthy: bf16 on GPU (huggingface/trl#5312 sleep OFF: 0.010, 0.018, 0.015; one token's gap
# up to 0.5-0.7, trl#6789), the same with top_p truncation (gap ~0.11 from the start, trl#6789)
# and fp32 on CPU (<= 9.5e-7, issue 14). Broken: the same run with sleep mode ON on TRL 1.9.0
# (0.201 from step 3), and fp32 from bench/bench_sync_gap.py (lr 1e-5 and 1e-4, tiny model).
HEALTHY_BF16 = ([0.010, 0.018, 0.015, 0.02, 0.017, 0.013, 0.019, 0.016] * 6,
                [0.48, 0.66, 0.52, 0.7, 0.61, 0.5, 0.59, 0.55] * 6)
HEALTHY_TRUNCATED = ([0.11, 0.12, 0.105, 0.13, 0.115] * 8, None)
HEALTHY_FP32 = ([2e-7, 3e-7, 1e-7, 4e-7, 9e-7, 5e-8] * 10, [9.5e-7, 8e-7, 6e-7, 9e-7, 9.5e-7, 3e-7] * 10)
BROKEN_BF16 = [0.010, 0.018, 0.201, 0.25, 0.31, 0.81]
BROKEN_FP32_LR_1E5 = [0.0, 5.69e-4, 9.26e-4, 1.18e-3, 1.49e-3]
BROKEN_FP32_LR_1E4 = [0.0, 5.66e-3, 9.24e-3, 1.19e-2, 1.5e-2]


@pytest.mark.parametrize("means, maxes", [HEALTHY_BF16, HEALTHY_TRUNCATED, HEALTHY_FP32],
                         ids=["bf16", "bf16-top_p", "fp32"])
def test_healthy_streams_never_fire(means, maxes):
    assert fired_at(WeightSyncWatch(), means, maxes) == []


def test_broken_stream_fires_once_after_k_steps():
    assert fired_at(WeightSyncWatch(), BROKEN_BF16) == [4]  # above from step 3; k = 2
    assert fired_at(WeightSyncWatch(GuardSettings(steps=3)), BROKEN_BF16) == [5]
    assert fired_at(WeightSyncWatch(GuardSettings(steps=1)), BROKEN_BF16) == [3]


def test_broken_fp32_streams_fire_where_an_absolute_0_1_would_not():
    assert fired_at(WeightSyncWatch(), BROKEN_FP32_LR_1E4) == [3]
    assert fired_at(WeightSyncWatch(), BROKEN_FP32_LR_1E5) == [5]
    absolute = GuardSettings(threshold=0.1, factor=1.0001)
    assert fired_at(WeightSyncWatch(absolute), BROKEN_FP32_LR_1E4) == []


# Async prefetch (Axolotl 0.21, hd32 model through the real vLLM-CPU server, lr 1e-3 constant,
# 10 steps; step 1 is bf16 autocast noise): measured 2026-11-24 with the push on and off.
ASYNC_HEALTHY = [0.009922, 0.06915, 0.04694, 0.03594, 0.03324, 0.02635, 0.02499, 0.0245, 0.02875, 0.03149]
ASYNC_LOST = [0.01023, 0.06459, 0.0909, 0.1065, 0.1189, 0.1321, 0.176, 0.1598, 0.1821, 0.1752]
LR_1E3 = [1e-3] * 10
# Without the autocast (fp32 both sides) the floor is ~1e-7 while one stale update still moves
# the gap by ~0.03-0.07: the stock rule calls that a desync. With a warm-up, a healthy stale
# gap grows with the learning rate; a lost push's grows with the sum of the updates it missed.
WARMUP = [1e-4 * k for k in range(1, 13)]
ASYNC_HEALTHY_FP32_WARMUP = [2e-7] + [50 * lr for lr in WARMUP[1:]]
ASYNC_LOST_FP32_WARMUP = [2e-7] + [50 * sum(WARMUP[1:k + 1]) for k in range(1, 12)]


def test_async_healthy_streams_never_fire_and_the_stock_rule_would_on_fp32():
    assert fired_at(WeightSyncWatch(stale_by=1), ASYNC_HEALTHY, lrs=LR_1E3) == []
    assert fired_at(WeightSyncWatch(stale_by=1), ASYNC_HEALTHY_FP32_WARMUP, lrs=WARMUP) == []
    assert fired_at(WeightSyncWatch(), ASYNC_HEALTHY_FP32_WARMUP, lrs=WARMUP) == [3]


def test_async_lost_push_fires_once_the_gap_outgrows_the_designed_staleness():
    assert fired_at(WeightSyncWatch(stale_by=1), ASYNC_LOST, lrs=LR_1E3) == [7]
    assert fired_at(WeightSyncWatch(stale_by=1), ASYNC_LOST_FP32_WARMUP, lrs=WARMUP) == [5]
    watch = WeightSyncWatch(stale_by=1)
    message = next(m for _, logs in stream(ASYNC_LOST, lrs=LR_1E3) if (m := watch.observe(logs)))
    assert "async prefetch samples up to 1 push(es) behind" in message and "steps 2-2" in message


def test_async_max_is_checked_only_against_an_explicit_threshold():
    maxes = [3e-7] + [0.2] * 9  # one stale update moves single tokens far beyond fp32 noise
    assert fired_at(WeightSyncWatch(stale_by=1), ASYNC_HEALTHY, maxes, LR_1E3) == []
    explicit = WeightSyncWatch(GuardSettings(max_threshold=0.1), stale_by=1)
    assert fired_at(explicit, ASYNC_HEALTHY, maxes, LR_1E3) == [4]


def test_the_limit_follows_the_first_logged_gap():
    watch = WeightSyncWatch()
    watch.observe({MEAN_KEY: 0.015}, 1)
    assert watch.limit == pytest.approx(0.15)
    watch = WeightSyncWatch()
    watch.observe({MEAN_KEY: 3e-7}, 1)
    assert watch.limit == 1e-3


def test_a_broken_streak_must_be_consecutive():
    assert fired_at(WeightSyncWatch(), [0.01, 0.3, 0.01, 0.3, 0.01, 0.3]) == []


def test_logs_without_the_metric_neither_count_nor_reset():
    watch = WeightSyncWatch()
    assert fired_at(watch, [None, 0.01, 0.3, None, None, 0.4]) == [6]  # eval/summary logs between
    assert watch.baseline == 0.01
    assert watch.observe({MEAN_KEY: float("nan")}, 7) is None


# fp32 at lr 1e-6 on an H100 (bench/bench_sync_gap.py): the mean grows too slowly for its limit.
BROKEN_FP32_LR_1E6 = ([0.0, 4.93e-5, 7.79e-5, 1.16e-4, 1.48e-4], [0.0, 2.64e-4, 4.07e-4, 6.0e-4, 1.0e-3])


def test_an_fp32_exact_run_also_checks_the_max():
    means, maxes = BROKEN_FP32_LR_1E6
    assert fired_at(WeightSyncWatch(), means) == []  # the mean alone stays under 1e-3
    watch = WeightSyncWatch()
    assert fired_at(watch, means, maxes) == [3] and watch.max_limit == sync_guard.MAX_AUTO_LIMIT
    assert "or max > 0.0001" in watch.diagnosis()


def test_the_max_stays_off_when_the_first_max_is_bf16_noise():
    watch = WeightSyncWatch()
    assert fired_at(watch, [0.01, 0.012, 0.011], [0.48, 3.0, 4.0]) == []
    assert watch.max_limit is None


def test_an_explicit_max_threshold_applies_whatever_the_first_max():
    means, maxes = [0.01, 0.012, 0.011, 0.013], [0.5, 3.0, 4.0, 5.0]
    assert fired_at(WeightSyncWatch(GuardSettings(max_threshold=2.0)), means, maxes) == [3]


def test_diagnosis_says_what_it_means_and_the_fix():
    watch = WeightSyncWatch()
    message = [watch.observe(logs, step) for step, logs in stream(BROKEN_BF16)][3]
    assert "not generating from the weights being trained" in message
    assert "step 3: mean 0.201" in message and "step 4: mean 0.25" in message
    assert "vllm_enable_sleep_mode" in message and "grpo_plugin.weight_sync_guard.stop" in message


# --- the callback and its settings --------------------------------------------------

def run_callback(settings: GuardSettings, means):
    from transformers import TrainerControl, TrainerState

    reported: list[str] = []
    callback = sync_guard.make_callback(settings, reported.append)
    state, control = TrainerState(), TrainerControl()
    for step, logs in stream(means):
        state.global_step = step
        control = callback.on_log(None, state, control, logs=logs)
        if control.should_training_stop:
            break
    return state, control, reported


def test_callback_stops_and_saves_when_configured():
    state, control, reported = run_callback(GuardSettings(stop=True), BROKEN_BF16)
    assert state.global_step == 4 and control.should_training_stop and control.should_save
    assert len(reported) == 1 and "Stopping the run" in reported[0]


def test_callback_only_reports_by_default():
    state, control, reported = run_callback(GuardSettings(), BROKEN_BF16)
    assert state.global_step == len(BROKEN_BF16) and not control.should_training_stop
    assert len(reported) == 1 and "Stopping" not in reported[0]


class FakeTrainer:
    def __init__(self, use_vllm=True):
        self.use_vllm, self.callbacks = use_vllm, []

    def add_callback(self, callback):
        self.callbacks.append(callback)


@pytest.mark.parametrize("section, expected", [
    (None, GuardSettings()),
    ({}, GuardSettings()),
    ({"weight_sync_guard": True}, GuardSettings()),
    ({"weight_sync_guard": {"threshold": 0.05, "steps": 3, "stop": True}},
     GuardSettings(threshold=0.05, steps=3, stop=True)),
    ({"weight_sync_guard": False}, None),
])
def test_attach_reads_grpo_plugin_weight_sync_guard(section, expected):
    trainer = FakeTrainer()
    callback = sync_guard.attach(read_run({"grpo_plugin": section}), trainer)
    if expected is None:
        assert callback is None and trainer.callbacks == []
    else:
        assert trainer.callbacks == [callback] and callback.watch.settings == expected


class AxolotlAsyncGRPOTrainer(FakeTrainer):
    def __init__(self, **args):
        super().__init__()
        self.args = type("Args", (), args)()


@pytest.mark.parametrize("args, stale_by", [
    ({}, 1),                                              # Axolotl's defaults: depth 1, every step
    ({"prefetch_depth": 2, "vllm_sync_interval": 1}, 2),
    ({"prefetch_depth": 1, "vllm_sync_interval": 3}, 3),
])
def test_attach_counts_the_staleness_the_async_trainer_is_built_with(args, stale_by):
    trainer = AxolotlAsyncGRPOTrainer(**args)
    callback = sync_guard.attach(read_run({}), trainer)
    assert trainer.callbacks == [callback] and callback.watch.stale_by == stale_by
    assert sync_guard.attach(read_run({}), FakeTrainer()).watch.stale_by == 0  # the stock trainer


def test_attach_skips_trainers_without_vllm():
    trainer = FakeTrainer(use_vllm=False)
    assert sync_guard.attach(read_run({}), trainer) is None and trainer.callbacks == []


def test_bad_settings_are_refused_by_the_schema():
    from pydantic import ValidationError

    from axolotl_grpo_plugin.config.args import GRPOPluginSettings

    with pytest.raises(ValidationError):
        GRPOPluginSettings.model_validate({"weight_sync_guard": {"treshold": 0.1}})
    with pytest.raises(ValidationError):
        GRPOPluginSettings.model_validate({"weight_sync_guard": {"threshold": 0}})


# --- a real transformers Trainer stops and saves -----------------------------------

def test_real_trainer_stops_at_the_guard_and_saves_a_checkpoint(tmp_path):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=1, max_position_embeddings=16))
    rows = [{"input_ids": torch.arange(8) % 32, "labels": torch.arange(8) % 32} for _ in range(32)]
    gaps = iter(BROKEN_BF16 + [0.9] * 20)

    class LoggingTrainer(Trainer):
        """Adds the metric the way TRL's GRPOTrainer.log does."""

        def log(self, logs, start_time=None):
            if "loss" in logs:
                logs[MEAN_KEY] = next(gaps)
            super().log(logs, start_time)

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=12,
                             logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True)
    trainer = LoggingTrainer(model=model, args=args, train_dataset=rows)
    trainer.use_vllm = True
    reported: list[str] = []
    sync_guard.attach(read_run({"grpo_plugin": {"weight_sync_guard": {"stop": True}}}), trainer, reported.append)
    trainer.train()
    assert trainer.state.global_step == 4  # stopped at the guard, not at max_steps 12
    assert (tmp_path / "checkpoint-4" / "model.safetensors").is_file()
    assert len(reported) == 1


# --- the planner no longer recommends sleep mode on TRL <= 1.9 ---------------------

def test_planner_offers_sleep_mode_only_when_trl_syncs_with_it():
    from axolotl_grpo_plugin.plan.dims import KNOWN_MODELS
    from axolotl_grpo_plugin.plan.estimate import Workload, levers
    from axolotl_grpo_plugin.plan.gpus import find_gpu

    w = Workload(dims=KNOWN_MODELS["Qwen/Qwen2.5-1.5B-Instruct"], vllm_mode="colocate",
                 vllm_gpu_memory_utilization=0.5, micro_batch_size=8, gradient_accumulation_steps=8,
                 completion_tokens=512)
    gpu = find_gpu("L40S")
    labels = lambda ranked: [label for label, _ in ranked]
    assert not any("sleep" in label for label in labels(levers(w, gpu)))
    assert any("vllm_enable_sleep_mode" in label for label in labels(levers(w, gpu, sleep_mode_works=True)))


def test_planner_cli_does_not_recommend_sleep_mode_on_the_installed_trl(capsys):
    from axolotl_grpo_plugin.commands.plan import main

    if not sleep_mode_loses_weights(sync_guard.installed_trl_version()):
        pytest.skip("the installed TRL is past 1.9")
    main([str(REPO / "configs" / "gsm8k-1gpu-colocate.yaml"), "--gpu-type", "L4"])
    out = capsys.readouterr().out
    assert "Levers" in out and "sleep" not in out
