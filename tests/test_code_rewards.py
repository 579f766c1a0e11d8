"""The code rewards (issue 65): the program is the completion's last ```python block, scored by the
sandbox; registered like the other rewards; `grpo_plugin.code_sandbox` declared once, its wrong
values named; `check` refuses a sandbox that cannot run, never falling back to a weaker one."""

from __future__ import annotations

import dataclasses

import pytest

from axolotl_grpo_plugin import sandbox
from axolotl_grpo_plugin.config.args import CodeSandboxSettings
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.registry import BUILTIN_REWARDS, REWARDS
from axolotl_grpo_rewards import sandbox as rewards_sandbox
from axolotl_grpo_rewards.code import code_all_pass, code_pass_rate, extract_program


ADD = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(-1, 1) == 0"]


@pytest.fixture(autouse=True)
def local_sandbox():
    rewards_sandbox.configure(rewards_sandbox.Settings())
    box = rewards_sandbox.current_sandbox()
    if (problem := box.problem()):
        pytest.skip(f"no namespaces here: {problem}")
    yield
    rewards_sandbox.configure(rewards_sandbox.Settings())  # what a test configured stays in its test


@pytest.mark.parametrize("text, program", [
    (ADD, "def add(a, b):\n    return a + b\n"),
    ("```py\nx = 1\n```", "x = 1\n"),
    ("```Python3\nx = 1\n```", "x = 1\n"),
    ("<reasoning>\n```python\nwrong = 1\n```\n</reasoning>\n<answer>\n```python\nright = 1\n```\n</answer>", "right = 1\n"),
    ("```python\nfirst = 1\n```\n```python\nlast = 1\n```", "last = 1\n"),
    ("<answer>\nno block inside\n</answer>\n```python\nx = 2\n```", "x = 2\n"),
    ("```\nx = 1\n```", None),  # no language: not known to be Python
    ("```python\n```", None), ("def add(a, b): return a + b", None), ("", None),
])
def test_the_program_is_the_last_python_block(text, program):
    assert extract_program(text) == program
    assert extract_program([{"role": "assistant", "content": text}]) == program


def test_pass_rate_and_all_pass_on_a_batch():
    half = "```python\ndef add(a, b):\n    return 3\n```"
    completions = [ADD, half, "I cannot write code.", ADD]
    tests = [TESTS, TESTS, TESTS, ["assert add(1, 1) == 3"]]
    assert code_pass_rate(completions, tests) == [1.0, pytest.approx(1 / 3), 0.0, 0.0]
    assert code_all_pass(completions, tests) == [1.0, 0.0, 0.0, 0.0]


def test_a_malformed_tests_row_scores_none_and_names_the_sample(caplog):
    assert code_pass_rate([ADD, ADD], [TESTS, {"nope": 1}]) == [1.0, None]
    assert "sample 1" in caplog.text and "nope" in caplog.text
    assert code_pass_rate([ADD], None) == [None]


def test_a_sandbox_that_cannot_run_scores_none_never_zero(monkeypatch):
    class Down:
        def run(self, jobs):
            raise rewards_sandbox.SandboxUnavailable("the kernel refused a namespace")

    monkeypatch.setitem(rewards_sandbox._current, "sandbox", Down())
    assert code_pass_rate([ADD, "no code"], [TESTS, TESTS]) == [None, 0.0]


def test_the_rewards_are_registered_with_their_column():
    for name in ("code_pass_rate", "code_all_pass"):
        assert BUILTIN_REWARDS[name].columns == ("tests",)
        reward = REWARDS.load(name)
        assert reward.__name__ == name
        assert reward(completions=[ADD], tests=[TESTS]) == [1.0]


def test_the_config_keys_carry_the_sandboxs_own_defaults():
    limits = rewards_sandbox.Limits()
    settings = CodeSandboxSettings()
    assert {f.name: getattr(limits, f.name) for f in dataclasses.fields(limits)} == \
        {f.name: getattr(settings, f.name) for f in dataclasses.fields(limits)}
    assert settings.backend == "local" and rewards_sandbox.Settings().backend == "local"
    assert set(rewards_sandbox.BACKENDS) == set(CodeSandboxSettings.model_fields["backend"].annotation.__args__)


@pytest.mark.parametrize("section, key", [
    ({"memory_mb": 10}, "grpo_plugin.code_sandbox.memory_mb"),
    ({"backend": "docker"}, "grpo_plugin.code_sandbox.backend"),
    ({"test_timeout_s": 0}, "grpo_plugin.code_sandbox.test_timeout_s"),
    ({"processes": "many"}, "grpo_plugin.code_sandbox.processes"),
    ({"memroy_mb": 512}, "grpo_plugin.code_sandbox.memroy_mb"),
])
def test_a_wrong_sandbox_value_names_the_key_the_value_and_the_fix(section, key):
    with pytest.raises(GRPOConfigError) as info:
        read_run({"rl": "grpo", "grpo_plugin": {"code_sandbox": section}})
    (problem,) = [p for p in info.value.problems if p.key == key]
    assert problem.fix and (problem.value == next(iter(section.values())))


def _run(**code_sandbox):
    return read_run({"rl": "grpo", "trl": {"reward_funcs": ["code_pass_rate"]},
                     "grpo_plugin": {"code_sandbox": code_sandbox}})


def test_check_refuses_a_backend_that_cannot_run_and_never_falls_back(monkeypatch):
    from axolotl_grpo_plugin.check.code import check_code_sandbox
    from axolotl_grpo_rewards.sandbox.local import LocalSandbox

    assert check_code_sandbox(_run(), None) == []
    monkeypatch.setattr(LocalSandbox, "problem", lambda self: "unshare: unshare failed: Operation not permitted")
    (problem,) = check_code_sandbox(_run(), None)
    assert problem.key == "grpo_plugin.code_sandbox.backend" and "Operation not permitted" in problem.message
    assert "local_no_namespaces" in problem.fix
    (url,) = check_code_sandbox(_run(backend="sandbox_fusion"), None)
    assert url.key == "grpo_plugin.code_sandbox.url"
    no_code = read_run({"rl": "grpo", "trl": {"reward_funcs": ["correctness"]}})
    assert check_code_sandbox(no_code, None) == []


def test_check_names_the_missing_seccomp_library_and_how_to_install_it(monkeypatch):
    """A machine whose libseccomp cannot be loaded (the library's name changed to one no machine has):
    found before any program runs, and the fix says what to install."""
    from axolotl_grpo_plugin.check.code import check_code_sandbox
    from axolotl_grpo_rewards.sandbox import harness

    monkeypatch.setattr(harness, "SECCOMP_LIBRARY", "libseccomp-missing.so.0")
    for backend in ("local", "local_no_namespaces"):
        (problem,) = check_code_sandbox(_run(backend=backend), None)
        assert (problem.key, problem.value) == ("grpo_plugin.code_sandbox.backend", backend)
        assert "libseccomp-missing.so.0" in problem.message and "system-call filter" in problem.message, problem
        assert "apt-get install libseccomp2" in problem.fix, problem


def test_configure_hands_the_runs_limits_to_the_rewards():
    sandbox.configure(_run(test_timeout_s=1.5, memory_mb=256))
    box = rewards_sandbox.current_sandbox()
    assert (box.limits.test_timeout_s, box.limits.memory_mb, box.namespaces) == (1.5, 256, True)
    sandbox.configure(_run(backend="local_no_namespaces"))
    assert rewards_sandbox.current_sandbox().namespaces is False


def test_the_second_reward_on_a_batch_reuses_the_first_ones_verdicts(monkeypatch):
    from axolotl_grpo_rewards.sandbox.local import LocalSandbox

    unique = "```python\ndef add(a, b):\n    return a + b  # reused\n```"
    runs = []
    real = LocalSandbox._run_one
    monkeypatch.setattr(LocalSandbox, "_run_one",
                        lambda self, job: ("reused" in job.program and runs.append(job)) or real(self, job))
    assert code_pass_rate([unique], [TESTS]) == [1.0] and code_all_pass([unique], [TESTS]) == [1.0]
    assert len(runs) == 1
    rewards_sandbox.configure(rewards_sandbox.Settings())  # another sandbox: run afresh
    assert code_all_pass([unique], [TESTS]) == [1.0] and len(runs) == 2
