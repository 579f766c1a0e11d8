"""The step-time breakdown: the clock's exclusive accounting, the rollout-log record, the doctor's
generation-/push-/reward-/optimizer-bound advice, the report section, and a real CPU run."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO_ROOT, run_axolotl_train

from axolotl_grpo_plugin.config.args import DoctorSettings
from axolotl_grpo_plugin.observe.doctor import Doctor, make_callback
from axolotl_grpo_plugin.observe.step_time import METRICS, record
from axolotl_grpo_plugin.report import write_report
from axolotl_grpo_plugin.report.data import collect, findings_by_curve, step_time_shares
from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter, read_rollouts
from axolotl_grpo_plugin.rollouts.step_clock import PARTS, StepClock


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# --- the clock ---------------------------------------------------------------------

def test_nested_parts_are_counted_once():
    """optimizer 1 s, inside it generation 2 s with a 3 s push nested, rewards 0.5 s, 0.25 s unclaimed."""
    now = FakeTime()
    clock = StepClock(now)

    def push():
        now.t += 3

    def generate():
        now.t += 1
        clock.timed("weight_sync", push)()
        now.t += 1

    def train():
        now.t += 0.5
        clock.timed("generation", generate)()
        clock.timed("rewards", lambda: setattr(now, "t", now.t + 0.5))()
        now.t += 0.5

    clock.timed("optimizer", train)()
    now.t += 0.25
    seconds = clock.end_step()
    assert seconds == {"generation": 2.0, "weight_sync": 3.0, "rewards": 0.5, "optimizer": 1.0,
                       "other": 0.25, "step": 6.75}
    now.t += 2  # the next step starts where this one ended
    assert clock.end_step() == {**dict.fromkeys(PARTS, 0.0), "other": 2.0, "step": 2.0}


def test_rest_is_never_negative_and_an_open_part_is_split_at_the_step_end():
    now = FakeTime()
    clock = StepClock(now)
    clock.enter("optimizer")  # the optimizer step still running when the step ends
    now.t += 1.5
    first = clock.end_step()
    assert first["optimizer"] == 1.5 and first["other"] == 0.0 and first["step"] == 1.5
    now.t += 0.5
    clock.leave()
    second = clock.end_step()
    assert second["optimizer"] == 0.5 and second["step"] == 0.5
    assert sum(second[p] for p in PARTS) + second["other"] == pytest.approx(second["step"])


def test_an_exception_still_closes_the_part():
    now = FakeTime()
    clock = StepClock(now)

    def fails():
        now.t += 2
        raise RuntimeError("vLLM died")

    with pytest.raises(RuntimeError):
        clock.timed("generation", fails)()
    now.t += 1
    seconds = clock.end_step()
    assert seconds["generation"] == 2 and seconds["other"] == 1


def test_calls_from_another_thread_are_not_timed():
    """A background generator (async prefetch) does not make the step wait."""
    now = FakeTime()
    clock = StepClock(now)

    def generate():
        now.t += 4
        return "done"

    results = []
    worker = threading.Thread(target=lambda: results.append(clock.timed("generation", generate)()))
    worker.start()
    worker.join()
    assert results == ["done"]
    seconds = clock.end_step()
    assert seconds["generation"] == 0 and seconds["other"] == 4


def test_on_the_async_trainer_the_wait_for_the_background_batch_is_generation():
    """Axolotl's legacy async path: push weights, then wait for the queue's head batch. The wait
    is counted as generation, the push as weight_sync, the background `_generate` not at all."""
    import concurrent.futures
    import queue

    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.observe import step_time

    now = FakeTime()
    release = threading.Event()
    pushed = []

    class AsyncGRPOTrainer:
        def __init__(self):
            self.callbacks = []
            self._async_queue = queue.Queue()
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)

        def add_callback(self, callback):
            self.callbacks.append(callback)

        def _generate(self):
            release.wait(5)
            return "batch"

        def _calculate_rewards(self):
            pass

        def training_step(self):
            pass

        def _maybe_sync_vllm_weights(self):
            pushed.append(self._async_queue.queue[0].done())  # the head was waited for first
            now.t += 3

    trainer = AsyncGRPOTrainer()
    clock = step_time.attach(read_run({}), trainer)
    clock._now = now
    clock.restart()
    trainer._async_queue.put(trainer._executor.submit(trainer._generate))

    def finish_generation():
        now.t += 2  # the background batch takes 2 more seconds of the loop's time
        release.set()

    threading.Timer(0.05, finish_generation).start()
    trainer._maybe_sync_vllm_weights()
    assert trainer._async_queue.get().result() == "batch" and pushed == [True]
    seconds = clock.end_step()
    assert seconds["generation"] == 2 and seconds["weight_sync"] == 3 and seconds["other"] == 0
    trainer._executor.shutdown()


# --- the rollout log ----------------------------------------------------------------

def test_step_records_go_out_with_the_next_write_without_an_fsync_of_their_own(tmp_path, monkeypatch):
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    writer = RolloutLogWriter(tmp_path)
    writer.write_step([{"step": 1, "completion": "a"}])
    writer.defer(record(1, {"generation": 1.0, "step": 2.0}))
    assert len(fsyncs) == 1 and len(list(read_rollouts(tmp_path, everything=True))) == 1
    writer.write_step([{"step": 2, "completion": "b"}])
    writer.defer(record(2, {"generation": 1.0, "step": 2.0}))
    writer.flush()
    writer.flush()  # nothing left: no write
    assert len(fsyncs) == 3
    lines = list(read_rollouts(tmp_path, everything=True))
    assert [(r["step"], r.get("type")) for r in lines] == [(1, None), (1, "step_time"), (2, None), (2, "step_time")]
    assert [r["step"] for r in read_rollouts(tmp_path)] == [1, 2]  # not rollouts


# --- the doctor ---------------------------------------------------------------------

def logs(generation: float, step: float = 2.0, **parts) -> dict:
    entry = {"grad_norm": 1.0, METRICS["step"]: step, METRICS["generation"]: generation}
    entry.update({METRICS[k]: v for k, v in parts.items()})
    return entry


def fired(entries: list[dict], version: str = "0.19.0", **settings):
    doctor = Doctor(DoctorSettings(**settings), axolotl_version=version)
    return [f for i, entry in enumerate(entries) for f in doctor.observe(entry, i + 1)]


def test_generation_bound_fires_with_the_share_and_the_fix_for_the_installed_axolotl():
    entries = [logs(0.2)] + [logs(1.26)] * 4  # 63 % from step 2 on
    old, new = fired(entries, "0.19.0"), fired(entries, "0.21.0")
    assert [(f.step, f.signature) for f in old] == [(4, "generation_bound")]
    assert "generation-bound: 63 % of each step waits for generation" in old[0].message
    assert "trl.num_generations" in old[0].message and "async_prefetch" not in old[0].message
    assert "`trl.async_prefetch: true`" in new[0].message


def test_the_first_step_is_left_out_and_a_balanced_run_gets_no_verdict():
    warm_up = [logs(2.0)] + [logs(0.9, optimizer=0.6, rewards=0.4)] * 6  # 100 %, then 45 %
    assert fired(warm_up) == []  # with step 1 counted the running mean would pass 50 % to step 7
    assert fired([logs(0.9, step=2.0)] * 8) == []  # 45 %: below half


@pytest.mark.parametrize("part,signature,fix", [
    ("weight_sync", "push_bound", "generation_batch_size"),
    ("rewards", "reward_bound", "concurrency"),
    ("optimizer", "optimizer_bound", "gradient_checkpointing"),
])
def test_other_bounds_name_their_fix(part, signature, fix):
    found = fired([logs(0.1, **{part: 1.5})] * 5)
    assert [f.signature for f in found] == [signature] and fix in found[0].message
    if part == "weight_sync":
        assert "vllm_sync_interval" in fired([logs(0.1, weight_sync=1.5)] * 5, "0.21.0")[0].message


def test_a_bound_verdict_never_stops_the_run():
    callback = make_callback(DoctorSettings(stop=True, steps=1), report=lambda message: None)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    for step in (1, 2):
        callback.on_log(None, SimpleNamespace(global_step=step), control, logs=logs(1.8))
    assert [f.signature for f in callback.doctor.findings] == ["generation_bound"]
    assert not control.should_training_stop


# --- the report ---------------------------------------------------------------------

def test_report_shows_a_stacked_bar_and_the_mean_share(tmp_path):
    rows = [{"step": s, "completion": "x", "prompt": "p", "rewards": {"r": 1.0}, "reward": 1.0} for s in (1, 2, 3)]
    times = [record(1, {"generation": 9.0, "rewards": 0.0, "weight_sync": 0.0, "optimizer": 1.0, "other": 0.0,
                        "step": 10.0})]
    times += [record(s, {"generation": 1.0, "rewards": 0.5, "weight_sync": 0.0, "optimizer": 0.5, "other": 0.0,
                         "step": 2.0}) for s in (2, 3)]
    bound = {"type": "doctor", "step": 3, "signature": "generation_bound", "message": "m"}
    data = write_report([*rows, *times, bound], tmp_path / "r.html", "t")
    shares, count = step_time_shares(data)
    assert count == 2 and shares["generation"] == 0.5 and shares["rewards"] == 0.25
    assert data.total == 3  # step_time records are not rollouts
    assert findings_by_curve(data) == {}  # advice, not a curve's failure
    page = (tmp_path / "r.html").read_text()
    assert '<section id="step-time"><h2>Step time</h2>' in page and "generation: 50.0 %" in page
    assert 'alt="step time"' in page
    write_report(rows, tmp_path / "n.html", "t")
    assert 'id="step-time"' not in (tmp_path / "n.html").read_text()


def test_report_skips_unreadable_step_time_records():
    data = collect([{"type": "step_time", "step": 1, "seconds": {"step": "fast"}},
                    {"type": "step_time", "step": "x", "seconds": {}}])
    assert data.step_times == {} and data.skipped == 2


# --- a real run ---------------------------------------------------------------------

def smoke_config(tmp_path, model_dir, name, **plugin):
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    cfg.update(base_model=str(model_dir), output_dir=str(tmp_path / name),
               dataset_prepared_path=str(tmp_path / "prepared"), max_steps=4)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg["grpo_plugin"] = plugin
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.integration
def test_every_step_is_timed_in_a_real_run_and_the_switch_turns_it_off(embedded_model_dir, tmp_path):
    proc, steps = run_axolotl_train(smoke_config(tmp_path, embedded_model_dir, "on"), cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert len(steps) == 4
    for logged in steps:
        assert set(METRICS.values()) <= set(logged), logged
        assert logged["time/step"] > 0 and logged["time/generation"] > 0 and logged["time/optimizer"] > 0
    records = list(read_rollouts(tmp_path / "on", everything=True))
    timed = [r for r in records if r.get("type") == "step_time"]
    assert [r["step"] for r in timed] == [1, 2, 3, 4]
    for r in timed:
        s = r["seconds"]
        assert sum(s[p] for p in PARTS) <= s["step"] + 1e-5 and s["other"] >= 0
        assert sum(s[p] for p in PARTS) + s["other"] == pytest.approx(s["step"], abs=1e-5)
        assert s["weight_sync"] == 0  # transformers generate: nothing to push
    # the rollouts train the step that times them: generation's share shows in the metric
    for logged, r in zip(steps, timed):
        assert logged["time/step"] == pytest.approx(r["seconds"]["step"], rel=1e-3)
    data = write_report(records, tmp_path / "report.html", "on")
    assert sorted(data.step_times) == [1, 2, 3, 4] and 'id="step-time"' in (tmp_path / "report.html").read_text()

    proc, steps = run_axolotl_train(smoke_config(tmp_path, embedded_model_dir, "off", step_time=False),
                                    cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert len(steps) == 4 and not [k for logged in steps for k in logged if k.startswith("time/")]
    assert not [r for r in read_rollouts(tmp_path / "off", everything=True) if r.get("type") == "step_time"]
