"""The rollout log and learning metrics through a real `axolotl train` on CPU."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict

import pytest
import yaml
from conftest import REPO_ROOT, run_axolotl_train, subprocess_env

from axolotl_grpo_plugin.commands.report import main as report_main
from axolotl_grpo_plugin.observe import read_rollouts


# A reward the test can recompute from the logged text, so misaligned rows show up
# (the random tiny model writes no tags: the GSM8K rewards are mostly 0).
PROBE = '''
def char_count_reward(completions, **kwargs):
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(len(t) % 10) for t in texts]
'''
FIELDS = {"step", "mode", "group", "prompt", "completion", "rewards", "reward", "advantage",
          "length", "reflection", "answer"}


def write_config(tmp_path, model_dir, **overrides):
    (tmp_path / "probe_rewards.py").write_text(PROBE)
    cfg = yaml.safe_load((REPO_ROOT / "configs/smoke.yaml").read_text())
    cfg["base_model"] = str(model_dir)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(tmp_path / "out")
    cfg["trl"]["reward_funcs"].append("probe_rewards.char_count_reward")
    cfg.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def probe_env(tmp_path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(tmp_path)])}


def by_step(records):
    steps = defaultdict(list)
    for record in records:
        steps[record["step"]].append(record)
    return dict(sorted(steps.items()))


@pytest.mark.integration
def test_every_scored_completion_is_logged_and_matches_the_trainer_logs(embedded_model_dir, tmp_path):
    config, cfg = write_config(tmp_path, embedded_model_dir)
    proc, logged = run_axolotl_train(config, cwd=tmp_path, **probe_env(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    records = list(read_rollouts(tmp_path / "out"))
    per_step = cfg["micro_batch_size"] * cfg["gradient_accumulation_steps"]
    assert len(records) == cfg["max_steps"] * per_step
    assert all(set(r) == FIELDS and r["mode"] == "train" for r in records)
    steps = by_step(records)
    assert list(steps) == list(range(1, cfg["max_steps"] + 1))
    assert len(logged) == len(steps)

    names = list(records[0]["rewards"])
    assert "char_count_reward" in names and len(names) == 6
    for record in records:
        assert record["rewards"]["char_count_reward"] == len(record["completion"]) % 10
        assert record["group"] == 0  # 4 completions per step = one group of num_generations
    for log, (step, rows) in zip(logged, steps.items()):
        def mean(values):
            return sum(values) / len(values)
        for name in names:
            assert mean([r["rewards"][name] for r in rows]) == pytest.approx(
                log[f"rewards/{name}/mean"], rel=1e-3, abs=1e-3), (step, name)
        assert mean([r["reward"] for r in rows]) == pytest.approx(log["reward"], rel=1e-3, abs=1e-3)
        assert mean([r["length"] for r in rows]) == pytest.approx(log["completions/mean_length"], rel=1e-3)
        assert log["observe/mean_length"] == pytest.approx(log["completions/mean_length"], rel=1e-3)
        for key in ("observe/format_strict", "observe/format_soft", "observe/accuracy",
                    "observe/reflection_rate"):
            assert 0.0 <= log[key] <= 1.0, key
    # GRPO advantages are centred within each group
    for rows in steps.values():
        assert abs(sum(r["advantage"] for r in rows)) < 1e-3

    assert report_main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000


@pytest.mark.integration
def test_a_killed_run_leaves_a_parseable_log_missing_at_most_one_step(embedded_model_dir, tmp_path):
    config, cfg = write_config(tmp_path, embedded_model_dir, max_steps=2000)
    log = tmp_path / "out" / "rollouts.jsonl"
    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    with open(tmp_path / "train.log", "wb") as output:
        proc = subprocess.Popen([axolotl, "train", str(config)], cwd=tmp_path, stdout=output,
                                stderr=subprocess.STDOUT, env=subprocess_env(**probe_env(tmp_path)),
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 500
            while time.monotonic() < deadline and proc.poll() is None:
                if log.exists() and len({r["step"] for r in read_rollouts(log.parent)}) >= 3:
                    break
                time.sleep(0.2)
            assert proc.poll() is None, (tmp_path / "train.log").read_text()[-3000:]
            assert log.exists(), "no rollout log within 500 s"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its training child
            proc.wait()

    lines = log.read_bytes().split(b"\n")
    assert len(list(read_rollouts(log.parent, everything=True))) >= len(lines) - 2  # at most one torn
    records = list(read_rollouts(log.parent))                                     # last line besides ""
    steps = by_step(records)
    assert list(steps) == list(range(1, len(steps) + 1))
    per_step = cfg["micro_batch_size"] * cfg["gradient_accumulation_steps"]
    assert all(len(rows) == per_step for rows in list(steps.values())[:-1])
    assert report_main([str(log.parent)]) == 0
