"""The plugin hooks around the vLLM server, with a fake server: autostart from the
config (once, from LOCAL_RANK 0, on the reserved GPU), the other ranks waiting, the
manual-mode check, and every config-level failure message."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.config import defaults
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.vllm import autostart
from axolotl_grpo_plugin.vllm.server import ServerError, ServerSpec, VLLMServer


sys.path.insert(0, str(Path(__file__).parent))
from conftest import launch_env as env  # noqa: E402
from test_vllm_server import FAKE, alive, fake_command, read_info, wait_until  # noqa: E402


# These tests describe GPU machines, which never have vLLM's CPU build in use (vllm/cpu.py).
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("clean_vllm_state", "without_cpu_vllm")]
REPO = Path(__file__).resolve().parents[1]


def fake_factory(info: Path, mode: str = "ok", *extra: str):
    return lambda config: [sys.executable, str(FAKE), "--config", str(config), "--mode", mode,
                           "--info", str(info), *extra]


def problems(error: GRPOConfigError) -> dict[str, str]:
    return {p.key: f"{p.message} | {p.fix}" for p in error.problems}


def test_gsm8k_config_autostarts_on_the_last_gpu_and_stops(gsm8k_cfg, tmp_path):
    info = tmp_path / "info.json"
    autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_PORT="29500"),
                          gpu_count=lambda: 2, command=fake_factory(info, "ok", "--delay", "0.5", "--child"),
                          training=True)
    out = Path(gsm8k_cfg["output_dir"])
    port = gsm8k_cfg["vllm"]["port"]
    assert gsm8k_cfg["trl"]["vllm_server_host"] == "127.0.0.1"
    assert gsm8k_cfg["trl"]["vllm_server_port"] == port
    assert gsm8k_cfg["device_map"] == {"": 0}  # not "auto" over vLLM's GPU (`--launcher python`)

    messages: list[str] = []
    autostart.before_trainer(report=messages.append)
    assert "the vLLM server is up" in messages[-1]

    seen = read_info(info)
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "1"  # the reserved GPU
    assert seen["env"]["AXOLOTL_GRPO_PLUGIN_VLLM_SERVER"] == "1"
    assert seen["env"]["RANK"] is None and seen["env"]["WORLD_SIZE"] is None
    served = yaml.safe_load((out / "vllm-server.yaml").read_text())
    assert served["vllm"]["host"] == "127.0.0.1" and served["vllm"]["port"] == port
    assert served["base_model"] == gsm8k_cfg["base_model"]
    assert served["trl"] == gsm8k_cfg["trl"]  # the server loads what the trainer trains
    assert "fake vLLM: serving on" in (out / "vllm-server.log").read_text()

    autostart.after_training()
    assert wait_until(lambda: not alive(seen["pid"]) and not alive(seen["child"]), 10)


def test_the_model_loads_while_the_server_starts(gsm8k_cfg, tmp_path, monkeypatch):
    """`pre_model_load` does not wait for the autostarted server (the model and Axolotl's reference
    copy load meanwhile); the hook Axolotl calls right before it builds TRL's trainer, which
    connects to the server, does, and adds no callback."""
    from axolotl_grpo_plugin.plugin import GRPOPlugin
    from axolotl_grpo_plugin.vllm.health import is_healthy

    info = tmp_path / "info.json"
    run = read_run(gsm8k_cfg)
    autostart.on_register(gsm8k_cfg, run, env=env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"), gpu_count=lambda: 2,
                          command=fake_factory(info, "ok", "--delay", "3"), training=True)
    plugin = GRPOPlugin()
    monkeypatch.setattr(plugin, "_ours", lambda cfg: True)
    monkeypatch.setattr(plugin, "_run", lambda cfg: run)
    monkeypatch.setattr("axolotl_grpo_plugin.vllm.cpu.patch_trl_for_cpu", lambda run: None)
    url = autostart._STATE.url
    try:
        plugin.pre_model_load(gsm8k_cfg)
        assert not is_healthy(url)  # returned while the server still loads
        assert plugin.add_callbacks_pre_trainer(gsm8k_cfg, model=None) == []
        assert is_healthy(url)  # returned once it answers
    finally:
        autostart.after_training()


def test_only_local_rank_0_starts_the_others_wait(gsm8k_cfg, tmp_path):
    info = tmp_path / "info.json"
    cfg = copy.deepcopy(gsm8k_cfg)
    cfg["grpo_plugin"]["vllm_gpus"] = [0]
    rank1 = env(RANK="1", LOCAL_RANK="1", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", CUDA_VISIBLE_DEVICES="1",
                ACCELERATE_USE_CPU="False")
    autostart.on_register(cfg, read_run(cfg), env=rank1, gpu_count=lambda: 2, command=fake_factory(info), training=True)
    assert autostart._STATE.server is None and not info.exists()  # rank 1 started nothing
    assert "device_map" not in cfg  # under accelerate/torchrun Axolotl places the model itself

    port = cfg["trl"]["vllm_server_port"]
    server = VLLMServer(ServerSpec(command=fake_command(port), log_path=tmp_path / "l.log",
                                   host="127.0.0.1", port=port))
    server.start()
    try:
        autostart.before_trainer(report=lambda m: None)  # returns once rank 0's server answers
    finally:
        server.stop(grace=1)


def test_waiting_rank_fails_with_a_pointer_to_rank_0(gsm8k_cfg, monkeypatch):
    cfg = copy.deepcopy(gsm8k_cfg)
    cfg["grpo_plugin"]["vllm_startup_timeout"] = 1
    autostart.on_register(cfg, read_run(cfg), env=env(LOCAL_RANK="1", WORLD_SIZE="1"), gpu_count=lambda: 2,
                          command=None, training=True)
    monkeypatch.setattr(autostart.time, "sleep", lambda s: None)
    with pytest.raises(ServerError, match="LOCAL_RANK 0"):
        autostart.before_trainer(report=lambda m: None)


def test_accelerate_default_two_process_launch_is_refused(gsm8k_cfg, tmp_path):
    info = tmp_path / "info.json"
    with pytest.raises(GRPOConfigError) as error:
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(LOCAL_RANK="0", WORLD_SIZE="2", LOCAL_WORLD_SIZE="2"),
                              gpu_count=lambda: 2, command=fake_factory(info), training=True)
    text = str(error.value)
    assert "LOCAL_RANK 1 on GPU 1" in text
    assert "axolotl train configs/gsm8k.yaml -- --num_processes 1" in text
    assert not info.exists()


def test_too_few_gpus(gsm8k_cfg):
    with pytest.raises(GRPOConfigError) as error:
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(), gpu_count=lambda: 1, training=True)
    assert "needs 2 GPUs" in problems(error.value)["grpo_plugin.vllm_gpus"]


def test_multi_node_launch_is_refused(gsm8k_cfg):
    with pytest.raises(GRPOConfigError, match="several nodes"):
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(WORLD_SIZE="4", LOCAL_WORLD_SIZE="2"),
                              gpu_count=lambda: 3, training=True)


@pytest.mark.parametrize("change, key", [
    ({"use_vllm": False}, "trl.use_vllm"),
    ({"vllm_mode": "colocate"}, "trl.vllm_mode"),
    ({"vllm_mode": None}, "trl.vllm_mode"),
    ({"vllm_server_host": "10.0.0.7"}, "trl.vllm_server_host"),
])
def test_autostart_needs_server_mode_on_this_machine(gsm8k_cfg, change, key):
    gsm8k_cfg["trl"].update(change)
    with pytest.raises(GRPOConfigError) as error:
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(), gpu_count=lambda: 2, training=True)
    assert key in problems(error.value)


def test_bad_plugin_values_are_problems(gsm8k_cfg):
    gsm8k_cfg["grpo_plugin"]["vllm_startup_timeout"] = 0
    with pytest.raises(GRPOConfigError) as error:
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(), gpu_count=lambda: 2, training=True)
    assert "grpo_plugin.vllm_startup_timeout" in problems(error.value)


def test_not_a_training_process_starts_nothing(gsm8k_cfg, tmp_path):
    """`axolotl preprocess` / `vllm-serve` / `inference` run the same register."""
    info = tmp_path / "info.json"
    autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(), gpu_count=lambda: 2, command=fake_factory(info), training=False)
    assert autostart._STATE.server is None and not info.exists()


def test_autostart_off_starts_nothing(gsm8k_cfg, tmp_path):
    gsm8k_cfg["grpo_plugin"]["vllm_autostart"] = False
    autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(), gpu_count=lambda: 1, training=True)
    assert autostart._STATE.server is None and autostart._STATE.url is None


def test_missing_vllm_points_to_the_extra(tmp_path):
    if autostart.importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ServerError) as error:
        autostart.vllm_serve_command(tmp_path / "c.yaml")
    assert "pip install -e '.[vllm]'" in error.value.render()


def test_the_plugins_translator_exits_with_the_rendered_block(gsm8k_cfg, monkeypatch):
    from axolotl_grpo_plugin.plugin import reported_as_exit

    gsm8k_cfg["trl"]["vllm_mode"] = "colocate"
    with pytest.raises(SystemExit) as error, reported_as_exit():
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg))
    assert "axolotl-grpo-plugin found 1 config problem" in str(error.value.code)
    assert "trl.vllm_mode" in str(error.value.code)


def test_manual_mode_explains_the_two_commands(gsm8k_cfg, monkeypatch):
    gsm8k_cfg["grpo_plugin"]["vllm_autostart"] = False
    gsm8k_cfg["trl"]["vllm_server_timeout"] = 1
    monkeypatch.setattr(autostart.time, "sleep", lambda s: None)
    messages: list[str] = []
    with pytest.raises(ServerError) as error:
        autostart.check_manual_server(read_run(gsm8k_cfg), env(), messages.append, gpu_count=lambda: 2)
    text = error.value.render()
    port = gsm8k_cfg["trl"]["vllm_server_port"]
    assert f"no vLLM server answers http://127.0.0.1:{port}{defaults.VLLM_HEALTH_PATH}" in text
    assert "`CUDA_VISIBLE_DEVICES=1 axolotl vllm-serve configs/gsm8k.yaml`" in text
    assert "`CUDA_VISIBLE_DEVICES=0 axolotl train configs/gsm8k.yaml`" in text
    assert "vllm_autostart: true" in text
    assert "CUDA_VISIBLE_DEVICES=1 axolotl vllm-serve" in messages[0]


def test_manual_mode_passes_when_the_server_answers(gsm8k_cfg, tmp_path):
    port = gsm8k_cfg["trl"]["vllm_server_port"]
    server = VLLMServer(ServerSpec(command=fake_command(port), log_path=tmp_path / "l.log",
                                   host="127.0.0.1", port=port))
    server.start()
    try:
        server.wait_healthy(timeout=20, poll=0.05)
        autostart.check_manual_server(read_run(gsm8k_cfg), env(), lambda m: None, gpu_count=lambda: 2)
    finally:
        server.stop(grace=1)


def test_which_processes_count_as_training():
    assert autostart.is_training_process(["/x/axolotl/cli/train.py", "c.yaml"], "axolotl.cli.train")
    assert autostart.is_training_process(["/venv/bin/axolotl", "train", "c.yaml"], None)
    assert not autostart.is_training_process(["/venv/bin/axolotl", "vllm-serve", "c.yaml"], None)
    assert not autostart.is_training_process(["/x/preprocess.py", "c.yaml"], "axolotl.cli.preprocess")


def test_plugin_register_does_nothing_inside_the_server(monkeypatch):
    from axolotl_grpo_plugin.plugin import GRPOPlugin

    monkeypatch.setenv(autostart.SERVER_CHILD_ENV, "1")
    cfg = {"rl": "dpo", "plugins": ["axolotl_grpo_plugin.GRPOPlugin"], "trl": {"reward_funcs": ["nope"]}}
    GRPOPlugin().register(cfg)  # would raise outside the server: rl is not grpo, unknown reward
    assert cfg["trl"]["reward_funcs"] == ["nope"]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_real_vllm_serve_loads_the_written_config_and_fails_without_vllm(gsm8k_cfg, embedded_model_dir):
    """The real server entry (`axolotl vllm-serve` on the written config) gets through
    Axolotl's config loading with the plugin inside the server, then stops at the
    missing vLLM, which the error names with the install command."""
    if autostart.importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here; this checks the message when it is not")
    # no GPU and no Hub here: the embedded tiny model, full precision
    gsm8k_cfg.update(base_model=str(embedded_model_dir), bf16=False, tf32=False, flash_attention=False)
    gsm8k_cfg["grpo_plugin"]["vllm_startup_timeout"] = 240
    command = lambda config: [sys.executable, "-m", "axolotl.cli.main", "vllm-serve", str(config)]  # noqa: E731
    autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=env(AXOLOTL_DO_NOT_TRACK="1", HF_HUB_OFFLINE="1",
                                             PYTHONPATH=str(REPO)),
                          gpu_count=lambda: 2, command=command, training=True)
    with pytest.raises(ServerError) as error:
        autostart.before_trainer(report=lambda m: None)
    text = error.value.render()
    assert "exited with code" in text
    assert "pip install -e '.[vllm]'" in text
    assert "No module named 'vllm'" in text
