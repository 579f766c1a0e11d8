"""A vLLM server whose engine died while /health/ still answers 200 must not hang the
trainer: the start-up engine check and the /generate/ deadline fail fast, with the server log's
last lines, against the fake server's `dead-engine` mode."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.plugin import reported_as_exit
from axolotl_grpo_plugin.vllm import autostart, engine_check
from axolotl_grpo_plugin.vllm.health import health_url
from axolotl_grpo_plugin.vllm.server import ServerError, ServerSpec, VLLMServer
from axolotl_grpo_plugin.watch import liveness, recovery


sys.path.insert(0, str(Path(__file__).parent))
from conftest import free_port  # noqa: E402
from test_vllm_server import FAKE, fake_command  # noqa: E402


pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("clean_vllm_state")]
REPO = Path(__file__).resolve().parents[1]
DIED_LINE = "EngineCore worker died"


@pytest.fixture
def serve(tmp_path):
    """Start the fake server in a mode; it is stopped after the test."""
    servers: list[VLLMServer] = []

    def start(mode: str) -> VLLMServer:
        port = free_port()
        server = VLLMServer(ServerSpec(command=fake_command(port, mode), log_path=tmp_path / f"{mode}.log",
                                       host="127.0.0.1", port=port))
        server.start()
        servers.append(server)
        server.wait_healthy(30, report=lambda _: None)
        return server

    yield start
    for server in servers:
        server.stop()


def trl_style_generate(base: str):
    """What TRL 1.9's VLLMClient.generate does: a session POST with no timeout."""
    session = requests.Session()
    return lambda: session.post(f"{base}/generate/", json={"prompts": ["a"], "n": 2, "max_tokens": 8}).json()


def test_engine_check_passes_on_a_working_engine(serve):
    server = serve("ok")
    engine_check.check_engine(server.spec.url, server.spec.log_path, timeout=5)


def test_engine_check_fails_fast_on_a_dead_engine_with_the_log_tail(serve):
    server = serve("dead-engine")
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        engine_check.check_engine(server.spec.url, server.spec.log_path, timeout=2)
    assert time.monotonic() - started < 10
    message = info.value.render()
    assert "no answer within 2 s" in message and "answers" in message
    assert DIED_LINE in message  # the server log's last lines
    assert "grpo_plugin.vllm_generate_timeout" in message


def test_generate_deadline_ends_a_hung_call_with_the_log_tail(serve):
    server = serve("dead-engine")
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        liveness.call_with_deadline(trl_style_generate(engine_check.base_url(server.spec.url)), 3,
                                    server.spec.url, server.spec.log_path, health_every=0.5)
    assert 3 <= time.monotonic() - started < 15
    message = info.value.render()
    assert "no answer in 3 s" in message and "still answers" in message
    assert DIED_LINE in message


def test_generate_deadline_notices_a_server_that_dies_mid_call(serve):
    server = serve("dead-engine")
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        liveness.call_with_deadline(lambda: (server.stop(), time.sleep(30)), 60, server.spec.url,
                                    server.spec.log_path, health_every=0.5)
    assert time.monotonic() - started < 20  # long before the 60 s deadline
    assert "stopped answering" in info.value.render() and "fake vLLM: serving" in info.value.render()


def test_a_client_error_after_the_server_died_carries_the_log_tail(serve):
    server = serve("dead-engine")

    def call():
        server.stop()
        raise requests.ConnectionError("Connection aborted")

    with pytest.raises(ServerError) as info:
        liveness.call_with_deadline(call, 60, server.spec.url, server.spec.log_path)
    assert "Connection aborted" in info.value.render() and "the server died" in info.value.render()
    assert isinstance(info.value.__cause__, requests.ConnectionError)


def test_generate_deadline_passes_results_and_errors_through(serve):
    server = serve("ok")
    result = liveness.call_with_deadline(trl_style_generate(engine_check.base_url(server.spec.url)), 10,
                                         server.spec.url, None, health_every=0.5)
    assert len(result["completion_ids"]) == 2

    def fails():
        raise ValueError("from the client")

    with pytest.raises(ValueError, match="from the client"):
        liveness.call_with_deadline(fails, 10, server.spec.url, None)


class FakeClient:
    def __init__(self, base: str):
        self.base_url = base
        self.calls = 0
        self._post = trl_style_generate(base)

    def generate(self, prompts, n=1, **_):
        self.calls += 1
        return self._post()


def test_attach_wraps_the_trainer_client_and_names_the_autostart_log(serve, tmp_path):
    server = serve("dead-engine")
    client = FakeClient(engine_check.base_url(server.spec.url))
    trainer = SimpleNamespace(vllm_generation=SimpleNamespace(vllm_client=client))
    out = tmp_path / "out"
    out.mkdir()
    (out / autostart.LOG_NAME).write_text("worker: RuntimeError: the real reason\n")
    cfg = {"output_dir": str(out), "grpo_plugin": {"vllm_autostart": True, "vllm_generate_timeout": 2}}
    assert recovery.attach(read_run(cfg), trainer)
    assert recovery.attach(read_run(cfg), trainer)  # attaching twice does not wrap twice
    with pytest.raises(ServerError) as info:
        client.generate(["a"], n=2)
    assert client.calls == 1 and "the real reason" in info.value.render()


def test_attach_skips_colocate_and_a_zero_timeout():
    assert not recovery.attach(read_run({}), SimpleNamespace(vllm_generation=SimpleNamespace(llm=object())))
    assert not recovery.attach(read_run({}), SimpleNamespace())
    client = FakeClient("http://127.0.0.1:1")
    trainer = SimpleNamespace(vllm_generation=SimpleNamespace(vllm_client=client))
    assert not recovery.attach(read_run({"grpo_plugin": {"vllm_generate_timeout": 0}}), trainer)
    assert client.generate.__func__ is FakeClient.generate


# --- the autostart hook checks the engine -------------------------------------------

def autostart_with(cfg: dict, mode: str) -> None:
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "PATH": "/usr/bin:/bin"}
    autostart.on_register(cfg, read_run(cfg), env=env, gpu_count=lambda: 2, training=True,
                          command=lambda config: [sys.executable, str(FAKE), "--config", str(config),
                                                  "--mode", mode])


def test_autostart_refuses_a_server_whose_engine_is_dead(gsm8k_cfg, monkeypatch):
    monkeypatch.setattr(engine_check, "ENGINE_CHECK_TIMEOUT", 2.0)
    autostart_with(gsm8k_cfg, "dead-engine")
    started = time.monotonic()
    with pytest.raises(SystemExit) as info, reported_as_exit():
        autostart.before_trainer()
    assert time.monotonic() - started < 30
    assert DIED_LINE in str(info.value) and "vllm-server.log" in str(info.value)


def test_autostart_accepts_a_working_engine(gsm8k_cfg, monkeypatch):
    monkeypatch.setattr(engine_check, "ENGINE_CHECK_TIMEOUT", 5.0)
    autostart_with(gsm8k_cfg, "ok")
    messages: list[str] = []
    autostart.before_trainer(report=messages.append)
    assert "the vLLM server is up" in messages[-1]


def test_manual_server_with_a_dead_engine_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_check, "ENGINE_CHECK_TIMEOUT", 2.0)
    port = free_port()
    server = VLLMServer(ServerSpec(command=fake_command(port, "dead-engine"), log_path=tmp_path / "s.log",
                                   host="127.0.0.1", port=port))
    server.start()
    try:
        server.wait_healthy(30, report=lambda _: None)
        cfg = {"trl": {"use_vllm": True, "vllm_mode": "server", "vllm_server_host": "127.0.0.1",
                       "vllm_server_port": port}}
        with pytest.raises(ServerError) as info:
            autostart.check_manual_server(read_run(cfg), env={}, report=lambda _: None, gpu_count=lambda: 2)
        assert health_url("127.0.0.1", port) in str(info.value)
        assert "terminal that runs `axolotl vllm-serve`" in str(info.value)
    finally:
        server.stop()
