"""The sandbox_fusion backend (issue 65): the same harness and verdicts through a SandboxFusion server's
HTTP API, here a stand-in server on the loopback; a server that is down or answers nonsense gives
no score (None), never a pass, and `check` names it."""

from __future__ import annotations

import pytest
from fake_sandbox_fusion import Handler, serve

from axolotl_grpo_plugin.check.code import check_code_sandbox
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_rewards import sandbox as rewards_sandbox
from axolotl_grpo_rewards.code import code_pass_rate
from axolotl_grpo_rewards.sandbox import Job, Limits
from axolotl_grpo_rewards.sandbox.base import RESULT_MARK
from axolotl_grpo_rewards.sandbox.fusion import FusionSandbox
from axolotl_grpo_rewards.sandbox.harness import RESULT_MARK as HARNESS_MARK
from axolotl_grpo_rewards.sandbox.suites import parse_tests


LIMITS = Limits(test_timeout_s=2.0, cpu_s=2)
ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(autouse=True)
def default_sandbox_after():
    yield
    rewards_sandbox.configure(rewards_sandbox.Settings())


@pytest.fixture
def server():
    srv, url = serve()
    yield url
    srv.shutdown()


@pytest.fixture
def box(server):
    box = FusionSandbox(LIMITS, url=server, workers=4)
    if (problem := box.problem()):
        pytest.skip(f"the stand-in server cannot run the harness here: {problem}")
    return box


def test_the_marks_agree():
    assert RESULT_MARK == HARNESS_MARK


def test_verdicts_are_the_local_backends(box):
    tests = parse_tests(["assert add(1, 2) == 3", "assert add(2, 2) == 5"])
    always_equal = "class E:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return E()\n"
    results = box.run([Job(ADD, tests), Job("import sys\nsys.exit(0)\n", tests), Job(always_equal, tests),
                       Job("a, b = map(int, input().split())\nprint(a + b)\n", parse_tests([{"input": "1 2", "output": "3"}]))])
    assert [[t.passed for t in r.tests] for r in results] == [[True, False], [False, False], [False, False], [True]]
    assert Handler.requests[-1]["language"] == "python" and Handler.requests[-1]["run_timeout"] > 2


def test_a_loop_comes_back_as_a_timeout(box):
    (result,) = box.run([Job("def add(a, b):\n    while True:\n        pass\n", parse_tests(["assert add(1, 2) == 3"]))])
    assert not result.tests[0].passed and "timed out" in result.tests[0].detail


@pytest.mark.parametrize("answer", [{"status": "SandboxError", "message": "no runner"}, {"run_result": {
    "status": "Finished", "return_code": 0, "stdout": "passed\nAll tests passed\n", "stderr": ""}}, "nonsense"])
def test_an_answer_without_a_verdict_is_an_error_never_a_pass(server, answer):
    Handler.answer_override = answer
    (result,) = FusionSandbox(LIMITS, url=server).run([Job(ADD, parse_tests(["assert add(1, 2) == 3"]))])
    assert result.error and result.pass_rate is None


def test_a_server_that_is_down_scores_none_and_check_names_it(server, monkeypatch):
    down = "http://127.0.0.1:9"  # discard port: nothing listens
    (result,) = FusionSandbox(LIMITS, url=down).run([Job(ADD, parse_tests(["assert add(1, 2) == 3"]))])
    assert "127.0.0.1:9" in result.error
    rewards_sandbox.configure(rewards_sandbox.Settings(backend="sandbox_fusion", url=down))
    assert code_pass_rate(["```python\n" + ADD + "```"], [["assert add(1, 2) == 3"]]) == [None]
    run = read_run({"rl": "grpo", "trl": {"reward_funcs": ["code_pass_rate"]},
                    "grpo_plugin": {"code_sandbox": {"backend": "sandbox_fusion", "url": down}}})
    (problem,) = check_code_sandbox(run, None)
    assert problem.key == "grpo_plugin.code_sandbox.backend" and "127.0.0.1:9" in problem.message


def test_the_config_routes_the_rewards_through_the_server(box, server):
    from axolotl_grpo_plugin import sandbox

    run = read_run({"rl": "grpo", "trl": {"reward_funcs": ["code_pass_rate"]},
                    "grpo_plugin": {"code_sandbox": {"backend": "sandbox_fusion", "url": server}}})
    assert check_code_sandbox(run, None) == []
    sandbox.configure(run)
    before = len(Handler.requests)
    assert code_pass_rate(["```python\n" + ADD + "```"], [["assert add(1, 2) == 3"]]) == [1.0]
    assert len(Handler.requests) == before + 1
