"""Resuming a plugin run: the rollout log continues from the checkpoint's step (later records
of the crashed run are moved aside, so the report counts each step once), and the autostarted
vLLM server is configured to load the checkpoint's weights."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from transformers import TrainerControl, TrainerState

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.observe.trainer_hook import log_lifecycle
from axolotl_grpo_plugin.report import collect
from axolotl_grpo_plugin.rollouts.log import (
    SUPERSEDED_NAME,
    RolloutLogWriter,
    read_rollouts,
    supersede_after,
)
from axolotl_grpo_plugin.vllm.autostart import resumed_weights, write_server_config


def rows(step, n=2):
    return [{"step": step, "mode": "train", "completion": f"s{step} r{i}", "rewards": {"r": 1.0},
             "reward": float(step), "length": 3} for i in range(n)]


def crashed_log(out, *, rotate=False):
    """Steps 1-5 logged, a torn last line (the SIGKILL), an eval record at step 4."""
    writer = RolloutLogWriter(out, max_mb=0.0002 if rotate else 0)  # ~200 bytes: a part per step
    for step in range(1, 6):
        writer.write_step(rows(step))
        if step == 4:
            writer.write_step([{"step": 4, "mode": "eval", "kind": "eval", "metrics": {"eval/accuracy": 0.5}}])
    writer.close()
    with open(out / "rollouts.jsonl", "ab") as f:
        f.write(b'{"step": 6, "mode": "tr')


def test_resume_moves_later_steps_aside_and_the_log_continues_once_per_step(tmp_path):
    crashed_log(tmp_path)
    callback = log_lifecycle(RolloutLogWriter(tmp_path))
    state = TrainerState()
    state.global_step = 3  # resumed from checkpoint-3
    callback.on_train_begin(None, state, TrainerControl())
    aside = [json.loads(line) for line in (tmp_path / SUPERSEDED_NAME).read_text().splitlines()]
    assert sorted({r["step"] for r in aside}) == [4, 5] and len(aside) == 5
    assert all(r["superseded_by_resume_at"] == 3 for r in aside)
    for step in (4, 5, 6):  # the resumed run logs its steps
        callback.writer.write_step(rows(step))
    records = list(read_rollouts(tmp_path))
    steps = [r["step"] for r in records]
    assert steps == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    data = collect(records)
    assert data.total == 12 and data.evals == {}  # no double count of 4 and 5


def test_resume_rewrites_gzipped_parts_too(tmp_path):
    crashed_log(tmp_path, rotate=True)
    assert list(tmp_path.glob("rollouts.*.jsonl.gz"))
    before = [r["step"] for r in read_rollouts(tmp_path, everything=True)]
    moved = supersede_after(tmp_path, 2)
    after = [r["step"] for r in read_rollouts(tmp_path, everything=True)]
    assert after == [s for s in before if s <= 2] and moved == len(before) - len(after)
    for part in tmp_path.glob("rollouts.*.jsonl.gz"):
        gzip.decompress(part.read_bytes())  # still valid gzip


def test_a_fresh_run_does_not_touch_the_log(tmp_path):
    crashed_log(tmp_path)
    before = (tmp_path / "rollouts.jsonl").read_bytes()
    log_lifecycle(RolloutLogWriter(tmp_path)).on_train_begin(None, TrainerState(), TrainerControl())
    assert (tmp_path / "rollouts.jsonl").read_bytes() == before
    assert not (tmp_path / SUPERSEDED_NAME).exists()


def checkpoint(path, *, lora=False):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / ("adapter_model.safetensors" if lora else "model.safetensors")).write_bytes(b"x")
    if lora:
        (path / "adapter_config.json").write_text("{}")
    return path


def served_model(cfg, tmp_path):
    written = write_server_config(cfg, read_run(cfg), tmp_path / "server.yaml", "127.0.0.1", 8000)
    return yaml.safe_load(written.read_text())["base_model"]


def test_the_autostarted_server_loads_the_resumed_checkpoint(tmp_path):
    out = tmp_path / "out"
    ckpt = checkpoint(out / "checkpoint-4")
    base = {"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "output_dir": str(out)}
    assert served_model(base, tmp_path) == "Qwen/Qwen2.5-0.5B-Instruct"
    assert served_model({**base, "resume_from_checkpoint": str(ckpt)}, tmp_path) == str(ckpt.resolve())
    later = checkpoint(out / "checkpoint-10")
    checkpoint(out / "checkpoint-9")
    assert resumed_weights(read_run({**base, "auto_resume_from_checkpoints": True})) == str(later.resolve())
    lora = checkpoint(tmp_path / "lora" / "checkpoint-4", lora=True)
    # an adapter-only checkpoint: the server keeps base_model, TRL pushes the merged policy
    assert served_model({**base, "resume_from_checkpoint": str(lora)}, tmp_path) == base["base_model"]
    assert resumed_weights(read_run({**base, "resume_from_checkpoint": str(tmp_path / "missing")})) is None


def test_auto_resume_takes_the_last_whole_checkpoint_past_one_cut_short_while_saving(tmp_path):
    """transformers writes trainer_state.json last: a checkpoint without it was being saved when
    the run died (or the disk filled). Auto-resume would pick it (the highest N) and fail after
    the model loaded; it resumes from the last whole one instead, and says so. With none whole,
    or the torn one named explicitly, check refuses with the fix."""
    from axolotl_grpo_plugin.check.files import check_resume, resume_from_last_whole
    from axolotl_grpo_plugin.system.launch import Launch

    out = tmp_path / "out"
    torn = checkpoint(out / "checkpoint-4")  # model written, state not yet
    auto = {"output_dir": str(out), "auto_resume_from_checkpoints": True}

    def resume(cfg):
        return check_resume(read_run(cfg), Launch())

    def fill(cfg):  # the warnings; the Run it returns resumes where `cfg` now says
        run, warnings = resume_from_last_whole(cfg, read_run(cfg))
        assert run == read_run(cfg)
        return warnings

    [problem] = resume(auto)  # nothing whole to fall back on
    assert problem.key == "auto_resume_from_checkpoints"
    assert "checkpoint-4 has no trainer_state.json" in problem.message
    assert f"delete {torn}" in problem.fix and "no earlier checkpoint is whole" in problem.fix
    assert fill(dict(auto)) == []

    whole = checkpoint(out / "checkpoint-2")
    (whole / "trainer_state.json").write_text("{}")
    assert resume(auto) == []
    cfg = dict(auto)
    [warning] = fill(cfg)
    assert cfg["resume_from_checkpoint"] == str(whole)
    assert f"resuming from {whole}, the last whole checkpoint" in warning and str(torn) in warning
    assert resume(cfg) == [] and fill(cfg) == []  # explicit now

    [explicit] = resume({"resume_from_checkpoint": str(torn)})
    assert explicit.key == "resume_from_checkpoint" and explicit.value == str(torn)
    assert f"last whole one is {whole}" in explicit.fix
    [missing] = resume({"resume_from_checkpoint": str(out / "checkpoint-9")})
    assert "no checkpoint folder" in missing.message
    (torn / "trainer_state.json").write_text("{}")  # the save finished
    assert resume(auto) == [] and fill(dict(auto)) == []
    assert resume({"output_dir": str(out)}) == []  # a fresh run
    assert resume({"output_dir": str(tmp_path / "new"), "auto_resume_from_checkpoints": True}) == []


def test_a_full_disk_while_saving_names_the_whole_checkpoint_and_the_fix(tmp_path):
    import errno
    from types import SimpleNamespace

    from axolotl_grpo_plugin.watch.saves import CheckpointSaveError, watch_saves

    out = tmp_path / "out"
    whole = checkpoint(out / "checkpoint-2")
    (whole / "trainer_state.json").write_text("{}")
    saved = []

    def save(model, trial):
        if trainer.state.global_step == 4:
            checkpoint(out / "checkpoint-4")
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "checkpoint-4" / "optimizer.pt"))
        saved.append(trainer.state.global_step)

    trainer = SimpleNamespace(args=SimpleNamespace(output_dir=str(out)), state=SimpleNamespace(global_step=3),
                              _save_checkpoint=save)
    watch_saves(trainer)
    watch_saves(trainer)  # once only
    trainer._save_checkpoint(None, None)
    assert saved == [3]

    def broken(model, trial):
        raise RuntimeError("not about the disk")

    other = SimpleNamespace(args=trainer.args, state=trainer.state, _save_checkpoint=broken)
    watch_saves(other)
    with pytest.raises(RuntimeError, match="not about the disk"):  # room to spare: passes through as is
        other._save_checkpoint(None, None)
    trainer.state.global_step = 4
    with pytest.raises(CheckpointSaveError) as info:
        trainer._save_checkpoint(None, None)
    message = info.value.render()
    assert f"saving checkpoint-4 in {out} failed: No space left on device" in message  # room left: as is
    assert f"The last whole checkpoint is {whole}" in message and "df -h" in message
    assert "auto_resume_from_checkpoints: true" in message and info.value.exit_code == 1
    assert isinstance(info.value.__cause__, OSError)


def test_trl_pushes_weights_before_the_first_resumed_generation():
    """The fact resumed_weights' docstring relies on: TRL's sync tag starts at -1, so the first
    generation after a resume at any step N >= 0 syncs the trainer's weights to vLLM."""
    import inspect

    from trl import GRPOTrainer

    source = inspect.getsource(GRPOTrainer)
    assert "self._last_loaded_step = -1" in source
    assert "self.state.global_step != self._last_loaded_step" in source


# --- a real kill and resume on CPU --------------------------------------------------------

SLOW = '''
import time


def slow_zero_reward(completions, **kwargs):
    time.sleep(2.0)  # widens the window between steps so the test can kill mid-run
    return [0.0] * len(completions)
'''


def resume_config(tmp_path, repo_root, model_dir, name, **extra):
    from axolotl_grpo_plugin.config.load import read_yaml

    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["trl"]["reward_funcs"].append("slow_rewards.slow_zero_reward")
    cfg.update(base_model=str(model_dir), output_dir=str(tmp_path / name / "out"), max_steps=4,
               dataset_prepared_path=str(tmp_path / "prepared"), save_strategy="steps", save_steps=2,
               grpo_plugin={"eval_every": {"steps": 2, "limit": 2, "max_new_tokens": 4,
                                           "dataset": str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")}},
               **extra)
    path = tmp_path / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def completions(out, step):
    return [r["completion"] for r in read_rollouts(out) if r.get("step") == step]


def steps_of(out):
    return [r["step"] for r in read_rollouts(out)]



@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_matches_an_uninterrupted_run(repo_root, embedded_model_dir, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import time

    from conftest import run_axolotl_train, subprocess_env

    (tmp_path / "slow_rewards.py").write_text(SLOW)
    env = {"PYTHONPATH": os.pathsep.join([str(repo_root), str(tmp_path)])}

    # the reference: 4 steps without interruption
    config = resume_config(tmp_path, repo_root, embedded_model_dir, "whole")
    started = time.perf_counter()
    proc, whole = run_axolotl_train(config, cwd=tmp_path, timeout=900, **env)
    whole_seconds = time.perf_counter() - started
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    # the same run, SIGKILLed once checkpoint-2 is saved and step 3 is logged
    config = resume_config(tmp_path, repo_root, embedded_model_dir, "killed")
    out = tmp_path / "killed" / "out"
    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    child = subprocess.Popen([axolotl, "train", str(config)], cwd=tmp_path, env=subprocess_env(**env),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and child.poll() is None:
        if (out / "checkpoint-2" / "trainer_state.json").exists() and 3 in steps_of(out):
            break
        time.sleep(0.2)
    assert child.poll() is None, "the run ended before it could be killed after checkpoint-2"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    crashed = steps_of(out)
    assert 3 in crashed

    started = time.perf_counter()
    config = resume_config(tmp_path, repo_root, embedded_model_dir, "killed",
                           resume_from_checkpoint=str(out / "checkpoint-2"))
    proc, resumed = run_axolotl_train(config, cwd=tmp_path, timeout=900, **env)
    resume_seconds = time.perf_counter() - started
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    print(f"uninterrupted run (start + 4 steps) {whole_seconds:.0f} s; resumed run (start, "
          f"checkpoint load, log set-aside + 2 steps) {resume_seconds:.0f} s")

    # every step exactly once in the live log; the crashed run's step 3+ moved aside
    per_step = 4
    assert steps_of(out) == [s for s in (1, 2, 3, 4) for _ in range(per_step)]
    aside = [json.loads(line) for line in (out / SUPERSEDED_NAME).read_text().splitlines()]
    assert {r["step"] for r in aside} >= {3} and all(r["superseded_by_resume_at"] == 2 for r in aside)
    # the eval schedule continued: step 2 from the first run, step 4 from the resumed one, once each
    assert [r["step"] for r in read_rollouts(out, everything=True) if r.get("kind") == "eval"] == [2, 4]
    # the resumed steps 3-4 match the uninterrupted run (RNG, data order, optimizer restored)
    assert len(resumed) == 2 and len(whole) == 4
    for mine, theirs in zip(resumed, whole[2:]):
        for key in ("loss", "reward", "grad_norm", "completions/mean_length", "entropy"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-5), key
    assert completions(out, 3) == completions(tmp_path / "whole" / "out", 3)
    # no orphans: the killed process group is gone
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)


def saving_every_step(repo_root, model_dir, tmp_path, out):
    """configs/smoke.yaml for 2 steps, a checkpoint after each, auto-resume on; its path."""
    from axolotl_grpo_plugin.config.load import read_yaml

    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg.update(base_model=str(model_dir), output_dir=str(out), max_steps=2, save_strategy="steps",
               save_steps=1, dataset_prepared_path=str(tmp_path / "prepared"), auto_resume_from_checkpoints=True)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


@pytest.mark.integration
def test_auto_resume_past_a_torn_checkpoint_resumes_from_the_last_whole_one(repo_root, embedded_model_dir, tmp_path):
    """A real run saves checkpoint-1 and checkpoint-2; checkpoint-2 is then torn as a kill while
    saving leaves it (transformers writes trainer_state.json last). The same command with
    auto-resume says so, resumes from checkpoint-1, trains step 2 again and saves checkpoint-2
    whole; each step's rollouts are in the log once."""
    from conftest import run_axolotl_train

    out = tmp_path / "out"
    config = saving_every_step(repo_root, embedded_model_dir, tmp_path, out)
    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    assert proc.returncode == 0 and len(steps) == 2, (proc.stdout + proc.stderr)[-3000:]
    (out / "checkpoint-2" / "trainer_state.json").unlink()

    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert f"resuming from {out / 'checkpoint-1'}, the last whole checkpoint" in output
    assert len(steps) == 1, output[-3000:]  # step 2 only
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    per_step = len(steps_of(out)) // 2
    assert steps_of(out) == [1] * per_step + [2] * per_step


@pytest.fixture
def small_disk(tmp_path):
    """A 2.6 MB tmpfs (room for one checkpoint of the embedded model, not two); skipped where
    this user may not mount one."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode(errors='replace').strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.integration
def test_a_full_disk_while_saving_ends_the_run_clearly_and_resume_takes_the_whole_checkpoint(
        repo_root, embedded_model_dir, tmp_path, small_disk):
    """output_dir on a disk with room for checkpoint-1 only: saving checkpoint-2 fails with
    ENOSPC. The run ends rc 1 with one block naming the save, the last whole checkpoint and the
    fix; checkpoint-1 stays whole. With room again, the same command resumes from it."""
    import subprocess

    from conftest import run_axolotl_train

    out = small_disk / "out"
    config = saving_every_step(repo_root, embedded_model_dir, tmp_path, out)
    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert f"saving checkpoint-2 in {out} failed: the disk is full (0.0 MB free" in output, output[-3000:]
    assert f"The last whole checkpoint is {out / 'checkpoint-1'}" in output and "df -h" in output
    assert "CheckpointSaveError" not in output  # the block, not a traceback of it
    assert (out / "checkpoint-1" / "trainer_state.json").is_file()
    assert not (out / "checkpoint-2" / "trainer_state.json").exists()

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert f"resuming from {out / 'checkpoint-1'}, the last whole checkpoint" in output
    assert len(steps) == 1 and (out / "checkpoint-2" / "trainer_state.json").is_file()
