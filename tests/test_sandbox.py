"""The sandbox (issue 65): the model's worst code scores 0, comes back within its time, leaves
nothing running and writes nothing outside its folder; the verdict is read outside the program."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_rewards.sandbox import Job, Limits
from axolotl_grpo_rewards.sandbox.harness import decode, encode, same_output
from axolotl_grpo_rewards.sandbox.local import LocalSandbox
from axolotl_grpo_rewards.sandbox.suites import Suite, TestsError, parse_tests


LIMITS = Limits(test_timeout_s=2.0, cpu_s=2, memory_mb=512, processes=8)
ONE_TEST_S = LIMITS.test_timeout_s + 1.5  # a test's time, its judge's margin and the clean-up


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A local sandbox whose work folders live under this test's tmp_path (so that a process left
    running there, or a file left behind, is ours to find)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    box = LocalSandbox(LIMITS, workers=2)
    if (problem := box.problem()):
        pytest.skip(f"no namespaces here: {problem}")
    return box


def _run(box: LocalSandbox, program: str, tests, *, max_s: float | None = None):
    suite = tests if isinstance(tests, Suite) else parse_tests(tests)
    started = time.monotonic()
    (result,) = box.run([Job(program, suite)])
    took = time.monotonic() - started
    assert not result.error, result.error
    assert took < (max_s or len(suite.tests) * ONE_TEST_S + 3), f"took {took:.1f} s"
    return result


def _left_running(root: Path) -> list[str]:
    """Processes whose working folder is under `root` (the sandbox's work folders)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(root)):
                found.append(f"{entry}: {cwd}")
    return found


def _assert_clean(root: Path) -> None:
    deadline = time.monotonic() + 2
    while _left_running(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _left_running(root) == []
    assert list(root.iterdir()) == [], "the work folder was not removed"


# ---- what passes ---------------------------------------------------------------------------------

def test_a_right_program_passes_and_a_wrong_one_fails_each_test(sandbox, tmp_path):
    tests = ["assert add(1, 2) == 3", "assert add('a', 'b') == 'ab'", "assert add([1], [2]) == [1, 2]"]
    right = _run(sandbox, "def add(a, b):\n    return a + b\n", tests)
    assert [t.passed for t in right.tests] == [True, True, True]
    wrong = _run(sandbox, "def add(a, b):\n    return a * 2 if isinstance(a, int) else a + b\n", tests)
    assert [t.passed for t in wrong.tests] == [False, True, True]
    assert "assertion" in wrong.tests[0].detail
    _assert_clean(tmp_path)


def test_humaneval_check_with_its_prelude_and_entry_point(sandbox):
    tests = {"check": "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert helper(2) == 4\n",
             "entry_point": "total", "prelude": "def helper(x):\n    return x * 2\n"}
    assert _run(sandbox, "def total(xs):\n    return sum(xs)\n", tests).tests[0].passed
    missing = _run(sandbox, "def other(xs):\n    return sum(xs)\n", tests).tests[0]
    assert not missing.passed and "total" in missing.detail


def test_stdio_is_compared_whole_never_as_a_prefix(sandbox):
    tests = [{"input": "3 4\n", "output": "7\n8\n"}]
    program = "a, b = map(int, input().split())\nprint(a + b)\nprint(a + b + 1)   \n"
    assert _run(sandbox, program, tests).tests[0].passed  # line-end whitespace aside
    assert not _run(sandbox, "a, b = map(int, input().split())\nprint(a + b)\n", tests).tests[0].passed
    assert not _run(sandbox, program + "print('extra')\n", tests).tests[0].passed


def test_exceptions_the_test_expects_still_reach_it(sandbox):
    program = "def inv(x):\n    if x == 0:\n        raise ValueError('zero')\n    return 1 / x\n"
    test = "try:\n    inv(0)\n    raise AssertionError('no error')\nexcept ValueError:\n    pass\n"
    assert _run(sandbox, program, [test]).tests[0].passed


# ---- hacks that must never score -----------------------------------------------------------------

EARLY_EXITS = {
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "os._exit(0)": "import os\nos._exit(0)\n",
    "exit in the call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "atexit": "import atexit, sys\natexit.register(lambda: print('passed'))\ndef add(a, b):\n    sys.exit(0)\n",
    "excepthook": "import sys\nsys.excepthook = lambda *a: None\ndef add(a, b):\n    raise SystemExit(0)\n",
    "always equal": "class E:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
                    "def add(a, b):\n    return E()\n",
    "int subclass": "class E(int):\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return E(0)\n",
    "printing passed": "print('passed')\nprint('All tests passed')\ndef add(a, b):\n    print('passed')\n",
    "patched builtins": "import builtins\nbuiltins.AssertionError = type('X', (BaseException,), {})\n"
                        "def add(a, b):\n    return 0\n",
    "killing the parent": "import os, signal\ndef add(a, b):\n    for pid in (os.getppid(), 1, -1):\n"
                          "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n"
                          "            pass\n    return 0\n",
    "forged answer": "import os, json, struct\ndef add(a, b):\n    body = json.dumps(['ok', 3]).encode()\n"
                     "    os.write(4, struct.pack('!Q', len(body)) + body)\n    os._exit(0)\n",
}


@pytest.mark.parametrize("hack", sorted(EARLY_EXITS))
def test_hacks_never_score(sandbox, tmp_path, hack):
    result = _run(sandbox, EARLY_EXITS[hack], ["assert add(1, 2) == 3", "assert add(2, 2) == 5"])
    assert result.tests[1].passed is False  # a forged answer answers one call; the next finds no program
    if hack != "forged answer":
        assert result.tests[0].passed is False, result.tests[0]
    _assert_clean(tmp_path)


def test_a_forged_answer_is_only_ever_a_returned_value(sandbox):
    """Writing the call protocol's answer by hand is returning a value: never a verdict."""
    result = _run(sandbox, EARLY_EXITS["forged answer"], ["assert add(1, 2) == 4"])
    assert not result.tests[0].passed


# ---- bad input: back in time, nothing left running, nothing written outside ----------------------

def test_an_infinite_loop_fails_within_one_tests_time(sandbox, tmp_path):
    """A program that ran out of time once is not waited on again: its other tests fail unrun."""
    result = _run(sandbox, "def f():\n    while True:\n        pass\n", ["assert f() == 1"] * 3,
                  max_s=ONE_TEST_S + 3)
    assert [t.passed for t in result.tests] == [False] * 3
    assert "timed out" in result.tests[0].detail and all("not run" in t.detail for t in result.tests[1:])
    _assert_clean(tmp_path)


def test_a_fork_bomb_is_bounded_and_killed(sandbox, tmp_path):
    program = ("import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
               "        except OSError:\n            pass\n")
    result = _run(sandbox, program, ["assert f() == 1"])
    assert not result.tests[0].passed
    _assert_clean(tmp_path)


def test_a_memory_hog_fails(sandbox, tmp_path):
    program = "def f():\n    x = []\n    while True:\n        x.append(bytearray(50 << 20))\n"
    result = _run(sandbox, program, ["assert f() == 1"])
    assert not result.tests[0].passed and "MemoryError" in result.tests[0].detail
    _assert_clean(tmp_path)


def test_huge_output_is_cut_at_the_limit(sandbox, tmp_path):
    program = "while True:\n    print('x' * 10000)\n"
    result = _run(sandbox, program, [{"input": "", "output": "x"}], max_s=ONE_TEST_S + 2)
    assert not result.tests[0].passed and "output limit" in result.tests[0].detail
    printed = _run(sandbox, "def f():\n    while True:\n        print('x' * 10000)\n", ["assert f()"])
    assert not printed.tests[0].passed
    _assert_clean(tmp_path)


def test_writes_elsewhere_fail_and_leave_nothing(sandbox, tmp_path):
    outside = tmp_path.parent / f"escaped-{os.getpid()}"
    program = ("import os\ndef f(path):\n    with open(path, 'w') as fh:\n        fh.write('x')\n    return 1\n"
               "def big():\n    with open('big', 'wb') as fh:\n        fh.write(b'x' * (64 << 20))\n    return 1\n"
               "def here():\n    open('ok', 'w').write('fine')\n    return open('ok').read()\n")
    tests = [f"assert f({str(outside)!r}) == 1", "assert f('/tmp/escaped-sandbox') == 1",
             f"assert f({str(tmp_path / 'x')!r}) == 1", "assert f('../x') == 1", "assert big() == 1",
             "assert here() == 'fine'"]
    result = _run(sandbox, program, tests)
    assert [t.passed for t in result.tests] == [False, False, False, False, False, True]
    assert not outside.exists() and not Path("/tmp/escaped-sandbox").exists()
    _assert_clean(tmp_path)


def test_the_environment_is_empty(sandbox, monkeypatch):
    monkeypatch.setenv("GRPO_SANDBOX_SECRET", "s3cret")
    program = ("import os\ndef env():\n    return dict(os.environ)\n"
               "def proc():\n    return open('/proc/1/environ', 'rb').read().decode()\n")
    result = _run(sandbox, program, ["assert env() == {}", "assert 's3cret' in proc()"])
    assert [t.passed for t in result.tests] == [True, False]


def test_what_the_program_sees_of_the_machine(sandbox):
    """Only the namespace's processes, a /dev of five devices, nothing under /root but Python, no interfaces up."""
    program = ("import os, socket\ndef procs():\n    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
               "def dev():\n    return sorted(os.listdir('/dev'))\n"
               "def root():\n    return [n for n in os.listdir('/root') if not n.startswith('.')]\n"
               "def up():\n    return [n for _, n in socket.if_nameindex()]\n")
    result = _run(sandbox, program, ["assert max(procs()) < 10", "assert dev() == ['fd', 'full', 'null', 'random', "
                                     "'stderr', 'stdin', 'stdout', 'urandom', 'zero']", "assert root() == []",
                                     "assert up() == ['lo']"])
    assert [t.passed for t in result.tests] == [True] * 4, [t.detail for t in result.tests]


def test_no_network(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    waiter = threading.Thread(target=accept)
    waiter.start()
    program = f"import socket\ndef f():\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    return 1\n"
    result = _run(sandbox, program, ["assert f() == 1"])
    waiter.join()
    server.close()
    assert not result.tests[0].passed and accepted == []


def test_setsid_orphans_and_endless_threads_are_gone_after_the_call(sandbox, tmp_path):
    program = ("import os, threading, time\ndef f():\n    if os.fork() == 0:\n        os.setsid()\n"
               "        if os.fork() == 0:\n            os.execv('/bin/sleep', ['sleep', '300'])\n        os._exit(0)\n"
               "    threading.Thread(target=lambda: time.sleep(300)).start()\n    return 1\n")
    result = _run(sandbox, program, ["assert f() == 2"])
    assert not result.tests[0].passed
    _assert_clean(tmp_path)
    # a thread that never ends and asks for nothing (a list growing forever would end at the memory limit)
    threads = "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()\nprint(7)\n"
    stuck = _run(sandbox, threads, [{"input": "", "output": "7"}], max_s=ONE_TEST_S + 2)
    assert not stuck.tests[0].passed and "timed out" in stuck.tests[0].detail
    _assert_clean(tmp_path)


def test_a_segfault_fails_the_test_not_the_sandbox(sandbox, tmp_path):
    program = "import ctypes\ndef f():\n    return ctypes.string_at(0)\n"
    result = _run(sandbox, program, ["assert f() == 1", "assert 1 == 1"])
    assert [t.passed for t in result.tests] == [False, True]
    _assert_clean(tmp_path)


def test_tests_are_independent(sandbox):
    program = "state = []\ndef push(x):\n    state.append(x)\n    return len(state)\n"
    assert [t.passed for t in _run(sandbox, program, ["assert push(1) == 1", "assert push(2) == 1"]).tests] == \
        [True, True]


SYSTEM_CALLS = r"""
import ctypes, os, platform, subprocess, threading
NUMBERS = {"x86_64": {"clone": 56, "bpf": 321, "io_uring_setup": 425, "perf_event_open": 298},
           "aarch64": {"clone": 220, "bpf": 280, "io_uring_setup": 425, "perf_event_open": 241}}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def errno_of(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(NUMBERS[name]), *[ctypes.c_long(a) for a in args])
    if result == 0 and name == "clone":  # the child of an unfiltered clone: gone at once
        os._exit(0)
    return ctypes.get_errno() if result == -1 else 0

def clone_user_namespace():
    return errno_of("clone", 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD

def bpf():
    return errno_of("bpf", 0, 0, 0)

def io_uring_setup():
    return errno_of("io_uring_setup", 1, 0)

def perf_event_open():
    return errno_of("perf_event_open", 0, 0, -1, -1, 0)

def thread_fork_and_subprocess():
    seen = []
    thread = threading.Thread(target=lambda: seen.append("thread"))
    thread.start()
    thread.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    seen.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    seen.append(subprocess.run(["/bin/echo", "hi"], capture_output=True, text=True).stdout)
    return seen
"""


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="system call numbers for x86_64 and aarch64")
@pytest.mark.parametrize("backend", ["local", "local_no_namespaces"])
def test_system_calls_that_open_the_kernel_fail_and_the_rest_still_work(tmp_path, monkeypatch, backend):
    """The seccomp filter (harness.DENIED_SYSCALLS): a new user namespace, eBPF, io_uring and perf
    get EPERM (unfiltered, each returns something else here: EFAULT, EINVAL, a child); threads,
    fork and subprocess still run (clone3's ENOSYS sends the C library back to clone)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    box = LocalSandbox(LIMITS, namespaces=backend == "local")
    if (problem := box.problem()):
        pytest.skip(problem)
    denied = ["clone_user_namespace", "bpf", "io_uring_setup", "perf_event_open"]
    result = _run(box, SYSTEM_CALLS, [f"assert {name}() == 1, {name}()" for name in denied]
                  + ["assert thread_fork_and_subprocess() == ['thread', 7, 'hi\\n'], thread_fork_and_subprocess()"])
    assert [(t.passed, t.detail) for t in result.tests] == [(True, "")] * 5
    _assert_clean(tmp_path)


def test_without_libseccomp_the_sandbox_runs_nothing_and_says_why(tmp_path, monkeypatch):
    """No filter, no program: the job's error names the library (check turns it into the fix)."""
    from axolotl_grpo_rewards.sandbox import harness

    monkeypatch.setattr(harness, "SECCOMP_LIBRARY", "libseccomp-missing.so.0")
    job = {"limits": LIMITS.as_dict(), "workdir": str(tmp_path), "uid": None, "namespaces": False, "seccomp": True,
           "kind": "asserts", "tests": ["assert True"], "program": "", "prelude": ""}
    out = harness.run_job(job)
    assert "libseccomp-missing.so.0" in out.get("error", ""), out
    assert list(tmp_path.iterdir()) == []  # not a test was started


def test_no_namespaces_is_weaker_but_keeps_the_verdict_outside(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    box = LocalSandbox(LIMITS, namespaces=False)
    if (problem := box.problem()):
        pytest.skip(problem)
    assert [t.passed for t in _run(box, EARLY_EXITS["always equal"], ["assert add(1, 2) == 3"]).tests] == [False]
    assert _run(box, "def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3"]).tests[0].passed
    _assert_clean(tmp_path)


# ---- the tests column ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind, n", [
    (["assert f(1) == 2", "assert f(2) == 3"], "asserts", 2),
    ('["assert f(1) == 2"]', "asserts", 1),
    ("import math\nassert f(1) == 2\nassert f(2) == 3\n", "asserts", 2),
    ({"test_list": ["assert f(1) == 2"], "test_setup_code": "import math"}, "asserts", 1),
    ({"check": "def check(candidate):\n    assert candidate(1)\n", "entry_point": "f"}, "check", 1),
    ([{"input": "1", "output": "2"}], "stdio", 1),
    ({"inputs": ["1", "2"], "outputs": ["2", "3"]}, "stdio", 2),
])
def test_every_form_of_the_tests_column_is_read(value, kind, n):
    suite = parse_tests(value)
    assert (suite.kind, len(suite.tests)) == (kind, n)
    assert parse_tests(suite.as_json()) == suite


@pytest.mark.parametrize("value, says", [
    ([], "no tests"), (None, "NoneType"), (["assert f(1 =="], "not valid Python"),
    ([{"input": "1"}], "{'input': str, 'output': str}"), (["assert 1", {"input": "1", "output": "2"}], "mix"),
    ({"check": "def check(candidate):\n    pass\n"}, "entry_point"), ("[1, 2", "do not parse"),
    ({"check": "def check(c):\n    pass\n", "entry_point": "not a name"}, "not a function name"),
])
def test_a_malformed_tests_value_says_what_is_wrong(value, says):
    with pytest.raises(TestsError, match=None) as info:
        parse_tests(value)
    assert says in str(info.value)


# ---- properties ----------------------------------------------------------------------------------

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
    | st.complex_numbers(allow_nan=False),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.frozensets(st.integers() | st.text())
    | st.sets(st.integers()) | st.dictionaries(st.text() | st.integers(), inner), max_leaves=20)


@given(plain)
@settings(max_examples=300, deadline=None)
def test_plain_data_crosses_the_pipe_exactly(value):
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


@given(st.text(alphabet="ab \n", max_size=30), st.text(alphabet=" \t", max_size=3))
@settings(max_examples=300, deadline=None)
def test_output_comparison_ignores_line_end_space_but_never_accepts_a_prefix(text, pad):
    assert same_output(text.replace("\n", pad + "\n") + pad, text)
    lines = [line for line in text.rstrip().split("\n")]
    if len(lines) > 1 and lines[-1].strip():
        assert not same_output("\n".join(lines[:-1]), text)
