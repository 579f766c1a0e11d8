"""The reward worker process (registry/isolation.py) belongs to the trainer process (issue 15):
it outlives the thread that started it, dies with the process, is quiet on Ctrl-C, and
scores a sample it cannot (un)pickle as an error without being replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import subprocess_env

from axolotl_grpo_plugin.registry.isolation import ERROR, OK, IsolatedRunner


TARGET = "test_reward_worker:length_reward"
TESTS = Path(__file__).resolve().parent


def length_reward(completions, **kwargs):
    return [float(len(completions[0]))]


class FailsToUnpickle:
    """Pickles fine here; loading it calls int("not a number"), which raises in the worker."""

    def __reduce__(self):
        return (int, ("not a number",))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_worker_outlives_the_thread_that_started_it():
    runner = IsolatedRunner(TARGET)
    try:
        first = []
        thread = threading.Thread(target=lambda: first.extend(
            runner.score([{"completions": ["abc"]}], sample_budget_s=30, call_budget_s=60)))
        thread.start()
        thread.join()
        assert [o.value for o in first] == [3.0]
        pid = runner._proc.pid
        time.sleep(1.0)  # PR_SET_PDEATHSIG would have fired at the thread's exit by now
        assert alive(pid), "the worker died with the thread that started it"
        again = runner.score([{"completions": ["abcd"]}], sample_budget_s=30, call_budget_s=60)
        assert [o.value for o in again] == [4.0] and runner._proc.pid == pid  # not restarted
    finally:
        runner.close()


def test_a_sample_that_cannot_be_pickled_or_unpickled_is_an_error_and_the_worker_stays():
    runner = IsolatedRunner(TARGET)
    try:
        runner.score([{"completions": ["warm"]}], sample_budget_s=30, call_budget_s=60)
        pid = runner._proc.pid
        samples = [{"completions": ["ab"]}, {"completions": ["x"], "extra": FailsToUnpickle()},
                   {"completions": ["abc"], "extra": lambda: 0}, {"completions": ["abcde"]}]
        outcomes = runner.score(samples, sample_budget_s=30, call_budget_s=60)
        assert [o.kind for o in outcomes] == [OK, ERROR, ERROR, OK]
        assert [outcomes[0].value, outcomes[3].value] == [2.0, 5.0]
        assert "cannot unpickle" in outcomes[1].detail and "ValueError" in outcomes[1].detail
        assert "cannot be sent" in outcomes[2].detail
        assert runner._proc.pid == pid and runner._proc.poll() is None
    finally:
        runner.close()


OWNER = textwrap.dedent("""
    import os, signal, sys, threading, time
    sys.path.insert(0, {tests!r})
    from axolotl_grpo_plugin.registry.isolation import IsolatedRunner
    runner = IsolatedRunner({target!r})
    def score():
        runner.score([{{"completions": ["abc"]}}], sample_budget_s=30, call_budget_s=60)
    if {in_thread!r}:
        thread = threading.Thread(target=score)  # started off the main thread, like a data loader
        thread.start(); thread.join()
    else:
        score()
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # the trainer's own quiet Ctrl-C
    print(runner._proc.pid, flush=True)
    time.sleep(120)
""")


def _owner(in_thread: bool = True):
    script = OWNER.format(tests=str(TESTS), target=TARGET, in_thread=in_thread)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                            start_new_session=True)


def test_the_worker_dies_with_the_trainer_process_even_by_sigkill():
    owner = _owner()
    try:
        worker = int(owner.stdout.readline())
        assert alive(worker)
        owner.kill()
        owner.wait(timeout=30)
        assert gone_within(worker, 10), "the worker outlived the process that owned it"
    finally:
        owner.kill()


@pytest.mark.parametrize("in_thread", [False, True])
def test_ctrl_c_on_the_trainer_prints_no_worker_traceback(in_thread):
    owner = _owner(in_thread)
    try:
        worker = int(owner.stdout.readline())
        os.killpg(owner.pid, signal.SIGINT)  # what Ctrl-C does: the terminal's whole group
        _, stderr = owner.communicate(timeout=30)
        assert owner.returncode == 130
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        assert gone_within(worker, 10)
    finally:
        owner.kill()


def test_sigint_sent_to_the_worker_itself_is_ignored():
    runner = IsolatedRunner(TARGET)
    try:
        runner.score([{"completions": ["a"]}], sample_budget_s=30, call_budget_s=60)
        os.kill(runner._proc.pid, signal.SIGINT)
        time.sleep(0.5)
        assert runner._proc.poll() is None
        assert [o.value for o in runner.score([{"completions": ["ab"]}], 30, 60)] == [2.0]
    finally:
        runner.close()
