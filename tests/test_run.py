"""config/run.py (issues 27, 48): the config read once into a typed Run, the one owner of the vLLM
server's GPU count and of the GPU layout; what register writes into the config, the Run holds too."""

from __future__ import annotations

import pytest

from axolotl_grpo_plugin.config import args, defaults
from axolotl_grpo_plugin.config import run as run_module
from axolotl_grpo_plugin.config.gpus import GpuLayoutError
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError


def _cfg(**plugin):
    return {"rl": "grpo", "micro_batch_size": 4, "gradient_accumulation_steps": 2,
            "trl": {"use_vllm": True, "vllm_mode": "server", "num_generations": 4},
            "vllm": {"tensor_parallel_size": 2, "data_parallel_size": 2, "host": "0.0.0.0", "port": 8123},
            "grpo_plugin": {"vllm_autostart": True, **plugin}}


def test_the_facts_are_typed_and_defaults_come_from_defaults_py():
    run = read_run(_cfg())
    assert (run.trl.use_vllm, run.trl.vllm_mode, run.server_mode) == (True, "server", True)
    assert (run.vllm_host, run.vllm_port) == (defaults.VLLM_HOST, 8123)  # 0.0.0.0 binds, the trainer connects locally
    assert run.server_gpus == 4 and run.trl.num_generations == 4
    assert run.trl.max_completion_length is None and run.completion_length == defaults.MAX_COMPLETION_LENGTH
    assert (run.micro_batch_size, run.gradient_accumulation_steps) == (4, 2)
    assert run.output_dir == defaults.DEFAULT_OUTPUT_DIR and run.plugin.vllm_autostart is True
    with pytest.raises(Exception):
        run.micro_batch_size = 1  # frozen
    with pytest.raises(Exception):
        run.trl.use_vllm = False


def test_a_wrong_value_is_a_problem_never_none():
    cfg = _cfg()
    cfg["vllm"]["tensor_parallel_size"] = "two"
    cfg["micro_batch_size"] = 0
    with pytest.raises(GRPOConfigError) as error:
        read_run(cfg)
    assert [(p.key, p.value) for p in error.value.problems] == [("vllm.tensor_parallel_size", "two"),
                                                                ("micro_batch_size", 0)]
    assert all(p.fix for p in error.value.problems)


def test_a_bad_plugin_value_is_a_plugin_error_naming_key_value_and_fix():
    with pytest.raises(GRPOConfigError) as error:
        read_run(_cfg(vllm_startup_timeout=-1))
    (problem,) = error.value.problems
    assert problem.key == "grpo_plugin.vllm_startup_timeout" and problem.value == -1 and problem.fix


def test_a_run_is_read_once_and_passed_not_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(run_module, "settings", lambda cfg: calls.append(1) or args.settings(cfg))
    cfg = _cfg()
    first = read_run(cfg)
    assert read_run(first) is first and len(calls) == 1  # a Run passed down is not read again
    cfg["grpo_plugin"]["vllm_relaunch"] = False  # another config: another run
    assert read_run(cfg).plugin.vllm_relaunch is False and first.plugin.vllm_relaunch is not False


def test_the_layout_is_computed_once_per_launch(monkeypatch):
    planned = []
    real = run_module.split_gpus
    monkeypatch.setattr(run_module, "split_gpus", lambda *a: planned.append(a) or real(*a))
    run = read_run(_cfg(vllm_gpus=[4, 5, 6, 7]))
    gpus = [str(i) for i in range(8)]
    layout = run.gpu_layout(gpus, 8)
    assert layout.server == ("4", "5", "6", "7") and layout.trainer == ("0", "1", "2", "3")
    assert run.gpu_layout(gpus) is layout and len(planned) == 1  # the check's layout, reused by autostart
    with pytest.raises(GpuLayoutError):
        run.gpu_layout(gpus[:6], 6)  # GPU 6 and 7 are not on a 6-GPU machine
    with pytest.raises(GpuLayoutError):
        run.gpu_layout(gpus[:6], 6)
    assert len(planned) == 2


def test_register_reads_the_plugin_section_once(gsm8k_cfg, monkeypatch):
    """The whole register route (relaunch, checks, autostart) shares the one Run."""
    from axolotl_grpo_plugin.config.args import GRPOPluginSettings
    from axolotl_grpo_plugin.plugin import GRPOPlugin
    from axolotl_grpo_plugin.system import launch

    parses = []
    real = GRPOPluginSettings.model_validate.__func__
    monkeypatch.setattr(GRPOPluginSettings, "model_validate",
                        classmethod(lambda cls, *a, **k: parses.append(1) or real(cls, *a, **k)))
    monkeypatch.setattr(launch, "cuda_gpu_count", lambda: 2)  # the config is a GPU config
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gsm8k_cfg["grpo_plugin"] = {"vllm_autostart": False, "doctor": {"steps": 2}}
    plugin = GRPOPlugin()
    plugin.register(gsm8k_cfg)
    assert plugin.run.plugin.doctor.steps == 2
    assert len(parses) == 1


@pytest.mark.parametrize("trl, vllm, address", [
    ({}, {"host": "0.0.0.0", "port": 8123}, ("127.0.0.1", 8123)),      # the server binds all, we reach it here
    ({}, {"host": "10.1.2.3"}, ("10.1.2.3", defaults.VLLM_PORT)),
    ({"vllm_server_host": "::1", "vllm_server_port": 9000}, {"host": "10.1.2.3", "port": 8123}, ("::1", 9000)),
])
def test_the_trainers_vllm_address_is_resolved_once_and_written_as_read(trl, vllm, address):
    from axolotl_grpo_plugin.check.hardware import fill_vllm_server_address
    from axolotl_grpo_plugin.vllm.autostart import autostart_problems

    cfg = {"trl": {"use_vllm": True, "vllm_mode": "server", **trl}, "vllm": vllm,
           "grpo_plugin": {"vllm_autostart": True}}
    run = read_run(cfg)
    assert (run.vllm_host, run.vllm_port) == address
    filled = fill_vllm_server_address(cfg, run)
    assert (cfg["trl"]["vllm_server_host"], cfg["trl"]["vllm_server_port"]) == address
    assert (filled.trl.vllm_server_host, filled.trl.vllm_server_port) == address  # written as read
    assert read_run(cfg).model_dump() == filled.model_dump()
    # autostart runs the server here: a remote address is refused, before the fill (check) as after (train)
    assert [p.key for p in autostart_problems(run)] == (["trl.vllm_server_host"] if address[0] == "10.1.2.3" else [])


def test_autostart_writes_the_address_it_gives_the_trainer_into_the_run_too(gsm8k_cfg):
    """Issue 48: the run kept `localhost` while register wrote 127.0.0.1 into the config."""
    from axolotl_grpo_plugin.vllm import autostart

    gsm8k_cfg["trl"]["vllm_server_host"] = "localhost"
    run = read_run(gsm8k_cfg)
    env = {"RANK": "0", "LOCAL_RANK": "1", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}
    after = autostart.on_register(gsm8k_cfg, run, env=env, gpu_count=lambda: 2, training=True)
    assert gsm8k_cfg["trl"]["vllm_server_host"] == "127.0.0.1" == after.vllm_host
    assert run.vllm_host == "localhost"  # the Run read before is not changed behind its holder's back
