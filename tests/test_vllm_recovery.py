"""A server the plugin started that dies or stalls is restarted, the current weights pushed and
the generation asked again (watch/recovery.py, vllm/restart.py), against the fake server in real processes; the
real vLLM-CPU path is in tests/test_vllm_cpu_e2e.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest
import requests
from conftest import free_port
from test_vllm_server import fake_command

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.vllm import autostart, restart
from axolotl_grpo_plugin.vllm.server import ServerError, ServerSpec, VLLMServer
from axolotl_grpo_plugin.watch import liveness, recovery


pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("clean_vllm_state")]


class Client:
    """TRL 1.9's VLLMClient as far as the guard sees it: generate() is a POST with no timeout."""

    def __init__(self, port: int):
        self.base_url = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        self.generations = 0

    def generate(self, prompts, n=1, **_):
        self.generations += 1
        return self.session.post(f"{self.base_url}/generate/", json={"prompts": prompts, "n": n}).json()


class Generation:
    """TRL's VLLMGeneration as far as the push goes: sync_weights posts to the server, one
    request per layer group (two here)."""

    def __init__(self, client: Client):
        self.vllm_client, self.pushes = client, 0

    def sync_weights(self):
        self.pushes += 1
        for _ in range(2):
            self.vllm_client.session.post(f"{self.vllm_client.base_url}/generate/", json={"prompts": []}).json()


@pytest.fixture
def own_server(tmp_path):
    """A fake server started as autostart would, answering generations in `generate_delay` s."""
    servers = []

    def start(generate_delay: float = 0.0, mode: str = "ok") -> tuple[VLLMServer, Client]:
        port = free_port()
        spec = ServerSpec(command=fake_command(port, mode, None, "--generate-delay", str(generate_delay)),
                          log_path=tmp_path / "out" / "vllm-server.log", host="127.0.0.1", port=port)
        server = VLLMServer(spec)
        server.start()
        server.wait_healthy(30, report=lambda _: None)
        servers.append(server)
        return server, Client(port)

    yield start
    for server in servers:
        server.stop(grace=1)


def keeper_for(server, generation, records, max_restarts=3):
    return restart.ServerKeeper(server, 30, max_restarts, push=generation.sync_weights,
                                 record=records.append, step=lambda: 7)


def kill(server: VLLMServer, sig=signal.SIGKILL) -> None:
    os.killpg(server.process.pid, sig)


def test_a_server_killed_mid_generation_is_noticed_in_seconds_restarted_and_asked_again(own_server, tmp_path):
    server, client = own_server(generate_delay=2.0)
    generation, records = Generation(client), []
    keeper = keeper_for(server, generation, records)
    liveness.watch_generate(client, liveness.WatchdogClock(600), server.spec.url, server.spec.log_path, keeper=keeper)
    first_pid = server.pid
    threading.Timer(0.5, keeper.kill).start()
    started = time.monotonic()
    answer = client.generate(["a"], n=2)
    took = time.monotonic() - started
    assert len(answer["completion_ids"]) == 2  # the generation was asked again and answered
    assert client.generations == 2 and generation.pushes == 1  # one generation redone, weights pushed once
    assert server.pid != first_pid and keeper.restarts == 1
    assert took < 15  # noticed by the process exit, not after the 600 s watchdog
    [record] = records
    assert record["noticed_s"] < 2
    assert record["type"] == "vllm_restart" and record["step"] == 7 and record["restart"] == 1
    # the process exit, or the connection it dropped with /health/ refused: either way, at once
    assert ("exited (code" in record["cause"] or "does not answer" in record["cause"])
    assert record["log"] == "vllm-server.restart-1.log"
    kept = tmp_path / "out" / "vllm-server.restart-1.log"
    assert "fake vLLM: serving" in kept.read_text()  # the dead server's log is kept, not overwritten
    assert "fake vLLM: serving" in server.spec.log_path.read_text()  # and the new one has its own


def test_a_push_that_fails_because_the_server_died_restarts_it_and_pushes_again(own_server):
    server, client = own_server()
    generation, records = Generation(client), []
    keeper = keeper_for(server, generation, records)
    recovery.rehearse_push(generation, client, 2, keeper)  # killed after the first request of push 2
    recovery.watch_push(generation, server.spec.url, keeper)

    generation.sync_weights()
    assert keeper.restarts == 0
    generation.sync_weights()
    assert keeper.restarts == 1 and "while weights were pushed" in records[0]["cause"]
    assert generation.pushes == 3  # the interrupted push, then a whole one on the new server
    assert client.generate(["a"])["completion_ids"] == [[2]]


def test_past_the_cap_the_run_stops_with_the_log_and_the_key(own_server):
    server, client = own_server()
    generation, records = Generation(client), []
    keeper = keeper_for(server, generation, records, max_restarts=1)
    liveness.watch_generate(client, liveness.WatchdogClock(600), server.spec.url, server.spec.log_path, keeper=keeper)
    kill(server)
    client.generate(["a"])
    kill(server)
    with pytest.raises(ServerError) as info:
        client.generate(["a"])
    message = info.value.render()
    assert "grpo_plugin.vllm_max_restarts` (1)" in message and "restarted 1 time(s)" in message
    assert "fake vLLM: serving" in message  # the log's last lines
    assert len(records) == 1


def test_a_stalled_server_is_found_by_the_watchdog_and_replaced(own_server, monkeypatch):
    monkeypatch.setattr(liveness, "HEALTH_EVERY", 0.5)
    monkeypatch.setattr(restart, "STOP_GRACE_S", 1.0)
    server, client = own_server()
    generation, records = Generation(client), []
    keeper = keeper_for(server, generation, records)
    liveness.watch_generate(client, liveness.WatchdogClock(600), server.spec.url, server.spec.log_path, keeper=keeper)
    stopped = server.process.pid
    keeper.kill(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert client.generate(["a"])["completion_ids"] == [[2]]
        assert time.monotonic() - started < 30
    finally:
        try:
            os.killpg(stopped, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert keeper.restarts == 1 and "stopped answering" in records[0]["cause"]
    assert records[0]["noticed_s"] < 5  # HEALTH_EVERY 0.5 s and a 0.5 s health timeout


def test_a_generation_that_never_returns_while_health_answers_is_restarted_up_to_the_cap(own_server, monkeypatch):
    """The fake server's dead engine: /health/ answers 200, /generate/ never does. The watchdog
    ends the wait, the server is restarted (its engine is dead again here), and past the cap the
    run stops with the log's last lines."""
    server, client = own_server(mode="dead-engine")
    records, pushes = [], []
    keeper = restart.ServerKeeper(server, 30, 1, push=lambda: pushes.append(1), record=records.append)
    # the restart's one-token engine check would refuse the dead engine at once; let the watchdog find it
    monkeypatch.setattr(restart, "check_engine", lambda *a, **k: None)
    liveness.watch_generate(client, liveness.WatchdogClock(2), server.spec.url, server.spec.log_path, keeper=keeper)
    with pytest.raises(ServerError) as info:
        client.generate(["a"])
    assert client.generations == 2 and keeper.restarts == 1 and pushes == [1]
    assert "gave no answer in 2 s while" in records[0]["cause"] and "still answers" in records[0]["cause"]
    assert "vllm_max_restarts` (1)" in info.value.render() and "EngineCore worker died" in info.value.render()


def test_a_server_that_is_only_slow_is_restarted_once_then_given_the_time_it_needs(own_server):
    """Generations that outgrow the watchdog's allowance (the cores shared with another job): the
    first is cut and the server restarted; the one asked again gets `factor` x the time already
    waited and finishes, instead of being cut at the same allowance until the cap ends the run."""
    server, client = own_server(generate_delay=1.5)
    generation, records = Generation(client), []
    keeper = keeper_for(server, generation, records)
    clock = liveness.WatchdogClock(600, factor=2, floor=1.0)
    clock.seen(0.1)  # earlier generations were fast: the allowance is the 1 s floor
    liveness.watch_generate(client, clock, server.spec.url, server.spec.log_path, keeper=keeper)
    assert client.generate(["a"])["completion_ids"] == [[2]]
    assert keeper.restarts == 1 and "gave no answer in 1 s" in records[0]["cause"]
    assert clock.timeout() >= 2.0


def test_a_generation_after_the_run_stopped_its_server_is_not_restarted(own_server, caplog):
    """Axolotl's async trainer prefetches the next batch in a background thread; at the end of
    training the plugin stops the server under it. That generation fails and stays failed: no
    restart, no push, no warning (seen on Axolotl 0.21: a 36 s restart after the run had ended)."""
    import logging

    server, client = own_server(generate_delay=2.0)
    generation, records = Generation(client), []
    keeper = keeper_for(server, generation, records)
    liveness.watch_generate(client, liveness.WatchdogClock(600), server.spec.url, server.spec.log_path, keeper=keeper)
    threading.Timer(0.5, server.retire).start()
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"), pytest.raises(ServerError) as info:
        client.generate(["a"])
    assert "after the run had stopped its vLLM server" in info.value.render()
    assert keeper.restarts == 0 and records == [] and generation.pushes == 0 and server.process is None
    assert "restarting" not in caplog.text


def test_the_watchdog_follows_the_slowest_generation_within_its_limit():
    clock = liveness.WatchdogClock(900, factor=4, floor=60)
    assert clock.timeout() == 900  # the first generation includes warm-up: the configured limit
    clock.seen(5)
    assert clock.timeout() == 60  # 4 x 5 s is below the floor
    clock.seen(40)
    clock.seen(10)
    assert clock.timeout() == 160
    clock.seen(400)
    assert clock.timeout() == 900
    off = liveness.WatchdogClock(float("inf"))  # grpo_plugin.vllm_generate_timeout: 0
    off.seen(5)
    assert off.timeout() == float("inf")


def test_a_server_started_by_hand_is_not_restarted_and_the_error_names_its_address(own_server):
    server, client = own_server()
    trainer = SimpleNamespace(vllm_generation=Generation(client), state=SimpleNamespace(global_step=0))
    assert recovery.attach(read_run({"grpo_plugin": {"vllm_autostart": False}}), trainer)
    assert autostart.own_server() is None
    server.stop(grace=1)
    with pytest.raises(ServerError) as info:
        client.generate(["a"])
    message = info.value.render()
    assert client.base_url in message and "resume_from_checkpoint" in message
    assert client.generations == 1


def test_a_push_to_a_server_started_by_hand_that_died_names_its_address(own_server):
    server, client = own_server()
    generation = Generation(client)
    recovery.watch_push(generation, server.spec.url, None)
    generation.sync_weights()
    server.stop(grace=1)
    with pytest.raises(ServerError) as info:
        generation.sync_weights()
    message = info.value.render()
    assert f"{server.spec.url} stopped answering while weights were pushed (ConnectionError)" in message
    assert "resume_from_checkpoint" in message and isinstance(info.value.__cause__, requests.ConnectionError)


@pytest.mark.parametrize(("value", "plan"), [
    ("generate:2", {"generate": 2}), ("push:3, generate:1,stall:4", {"push": 3, "generate": 1, "stall": 4}),
    ("", {}), ("kill:2,generate:x", {}),
])
def test_the_rehearsal_plan_is_read_from_the_environment(value, plan):
    assert recovery.kill_plan({recovery.KILL_ENV: value}) == plan


def test_an_error_raised_while_training_ends_the_run_with_its_block_not_a_traceback():
    from axolotl_grpo_plugin.plugin import report_errors_during_training

    def train(resume_from_checkpoint=None):
        raise ServerError("the server process exited (code -9)", "read the log")

    trainer = SimpleNamespace(train=train)
    report_errors_during_training(trainer)
    report_errors_during_training(trainer)  # once only
    with pytest.raises(SystemExit) as info:
        trainer.train(resume_from_checkpoint=None)
    assert str(info.value.code).strip() == "vLLM server: the server process exited (code -9)\n  fix: read the log"
