"""The modal backend (issue 65): the calls it makes exist in the installed modal SDK with these
parameters, and through a stand-in `modal` module that runs the sandbox's command here, it gives
the local backend's verdicts. Not run against Modal itself (no network or credentials here)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest
from fake_sandbox_fusion import PYTHON

from axolotl_grpo_rewards.sandbox import Job, Limits
from axolotl_grpo_rewards.sandbox.modal_backend import ModalSandbox
from axolotl_grpo_rewards.sandbox.suites import parse_tests


def test_the_calls_exist_in_the_installed_sdk():
    modal = pytest.importorskip("modal")
    from modal.io_streams import StreamReader, StreamWriter

    create = inspect.signature(modal.Sandbox.create).parameters
    assert {"app", "image", "timeout", "block_network", "cpu", "memory"} <= set(create)
    assert {"create_if_missing"} <= set(inspect.signature(modal.App.lookup).parameters)
    assert "python_version" in inspect.signature(modal.Image.debian_slim).parameters
    assert all(hasattr(StreamWriter, m) for m in ("write", "write_eof", "drain")) and hasattr(StreamReader, "read")
    assert all(hasattr(modal.Sandbox, m) for m in ("wait", "terminate", "returncode", "stdin", "stdout", "stderr"))


class _Stream:
    def __init__(self):
        self.data = ""

    def write(self, text):
        self.data += text

    def write_eof(self):
        pass

    def drain(self):
        pass

    def read(self):
        return self.data


class _Sandbox:
    created: list = []

    def __init__(self, *command, **options):
        assert command[:2] == ("python", "-c") and options["block_network"] is True
        type(self).created.append(options)
        self.command, self.stdin, self.stdout, self.stderr = command, _Stream(), _Stream(), _Stream()
        self.returncode, self.terminated = None, False

    create = classmethod(lambda cls, *command, **options: cls(*command, **options))

    def wait(self):
        proc = subprocess.run([PYTHON, "-c", self.command[2]], input=self.stdin.data.encode(), capture_output=True,
                              env={}, cwd="/tmp", timeout=60)
        self.stdout.data, self.stderr.data, self.returncode = proc.stdout.decode(), proc.stderr.decode(), proc.returncode

    def terminate(self):
        self.terminated = True


@pytest.fixture
def fake_modal(monkeypatch):
    module = types.SimpleNamespace(
        App=types.SimpleNamespace(lookup=lambda name, create_if_missing=False: f"app:{name}"),
        Image=types.SimpleNamespace(debian_slim=lambda python_version=None: f"debian:{python_version}"),
        Sandbox=_Sandbox)
    monkeypatch.setitem(sys.modules, "modal", module)
    return module


def test_verdicts_through_a_stand_in_modal(fake_modal):
    box = ModalSandbox(Limits(test_timeout_s=2.0, cpu_s=2))
    if (problem := box.problem()):
        pytest.skip(f"the stand-in cannot run the harness here: {problem}")
    tests = parse_tests(["assert add(1, 2) == 3", "assert add(2, 2) == 5"])
    results = box.run([Job("def add(a, b):\n    return a + b\n", tests), Job("import os\nos._exit(0)\n", tests)])
    assert [[t.passed for t in r.tests] for r in results] == [[True, False], [False, False]]
    assert _Sandbox.created[-1]["memory"] == 1024 + 512 and _Sandbox.created[-1]["app"] == "app:axolotl-grpo-code-sandbox"


def test_no_sdk_or_no_sandbox_is_an_error_not_a_score(monkeypatch):
    monkeypatch.setitem(sys.modules, "modal", None)
    box = ModalSandbox(Limits())
    assert "not installed" in box.problem()
    (result,) = box.run([Job("x = 1\n", parse_tests(["assert x == 1"]))])
    assert result.error and result.pass_rate is None
