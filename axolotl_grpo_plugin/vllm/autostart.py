"""The plugin's vLLM hooks: autostart the server for a training launch (waited for just before
the trainer is built), or check a hand-started one before the model loads.

Timeline in every training process (`python -m axolotl.cli.train CONFIG`, one per rank):

* `register`, first: a launch that puts a trainer on a reserved GPU is replaced by
  the right one (`relaunch.py`).
* `register` (raw config, before datasets): check the keys and the GPU layout; on
  LOCAL_RANK 0 only, write the effective config to `output_dir/vllm-server.yaml` and
  start `axolotl vllm-serve` on it with CUDA_VISIBLE_DEVICES = the reserved GPU(s).
  The server loads while Axolotl prepares the datasets and loads the model.
* `pre_model_load`: a hand-started server is checked (main process).
* `add_callbacks_pre_trainer` (Axolotl builds TRL's trainer right after it): every rank
  waits for the autostarted server's `/health/` (TRL's client on the main process connects
  in the trainer's constructor).
* `post_train_unload`, atexit, SIGTERM/SIGINT: the server is stopped.

Only training processes start a server: `axolotl preprocess`, `vllm-serve`,
`inference`... run the same `register` and must not.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import defaults
from ..config.gpus import GpuLayout, GpuLayoutError, check_launch, visible_gpus
from ..config.load import set_keys
from ..config.run import Run, write
from ..errors import GRPOConfigError, Problem
from ..system.launch import (
    DISTRIBUTED_ENV,
    RELAUNCHED_ENV,
    SERVER_CHILD_ENV,
    cuda_gpu_count,
    global_rank,
    local_processes,
    local_rank,
    world_size,
)
from ..system.safe_files import write_atomic
from ..training.checkpoints import resume_target
from . import cpu, engine_check
from .health import LOCAL_HOSTS, health_url, is_healthy
from .server import INSTALL_HINT, LOG_NAME, ServerError, ServerSpec, VLLMServer, install_teardown


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")  # INFO: the package sets it (__init__.py)

CONFIG_NAME = "vllm-server.yaml"


@dataclass
class _State:
    server: VLLMServer | None = None
    url: str | None = None
    timeout: float = 0.0


_STATE = _State()


# --- who am I ------------------------------------------------------------------

def is_server_child(env: Mapping[str, str] = os.environ) -> bool:
    """True inside the server we started: its config was already checked by the trainer."""
    return env.get(SERVER_CHILD_ENV) == "1"


def is_training_process(argv: list[str] | None = None, main_spec_name: str | None = None) -> bool:
    """`python -m axolotl.cli.train` (accelerate/torchrun ranks) or `axolotl train --launcher python`."""
    argv = sys.argv if argv is None else argv
    if main_spec_name is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_spec_name = getattr(spec, "name", None)
    if main_spec_name == "axolotl.cli.train":
        return True
    return len(argv) > 1 and Path(argv[0]).name.startswith("axolotl") and argv[1] == "train"


# --- config --------------------------------------------------------------------

def multi_node_problems(processes: int, node_processes: int) -> list[Problem]:
    """Autostart runs one server for a single-node launch: the one refusal of a launch over nodes."""
    if processes <= node_processes:
        return []
    return [Problem("grpo_plugin.vllm_autostart", True,
                    f"this launch spans several nodes ({processes} processes, {node_processes} on this node); "
                    "autostart runs one server for a single-node launch.",
                    "start `axolotl vllm-serve` by hand on one node and point `trl.vllm_server_host` at it")]


def autostart_problems(run: Run) -> list[Problem]:
    """The autostart keys agree with the vLLM mode and host (the GPU layout: `_gpu_layout`)."""
    problems = []
    if not run.trl.use_vllm:
        problems.append(Problem("trl.use_vllm", run.trl.use_vllm, "grpo_plugin.vllm_autostart starts a "
                                "vLLM server, but generation does not use vLLM.",
                                "set `trl.use_vllm: true` and `trl.vllm_mode: server`, or remove vllm_autostart"))
    elif run.trl.vllm_mode != "server":
        problems.append(Problem("trl.vllm_mode", run.trl.vllm_mode, "autostart runs a separate vLLM server; "
                                f"without `server`, {defaults.AXOLOTL_NAME} leaves TRL's default (colocate) and the "
                                "server would sit idle on its GPU.",
                                "set `trl.vllm_mode: server`, or turn `grpo_plugin.vllm_autostart` off for colocate"))
    host = run.vllm_host
    if host not in LOCAL_HOSTS:
        problems.append(Problem("trl.vllm_server_host", host, "autostart runs the server on this machine, but "
                                "the trainer would connect to another host.",
                                "set it to 127.0.0.1, or turn autostart off to use the server on that host"))
    return problems


def _gpu_layout(run: Run, env: Mapping[str, str], gpu_count: Callable[[], int]) -> tuple[GpuLayout, list[str]]:
    visible = visible_gpus(env, gpu_count)
    try:
        layout = run.gpu_layout(visible)
        check_launch(layout, visible, local_processes(env), run.config_path)
    except GpuLayoutError as exc:
        message = exc.message
        if exc.key == "launch" and env.get(RELAUNCHED_ENV) == "1":
            message += " This launch is already the plugin's automatic relaunch, so it is not relaunched again."
        raise GRPOConfigError([Problem(exc.key, exc.value, message, exc.fix)]) from None
    return layout, visible


# --- hooks ---------------------------------------------------------------------

def on_register(cfg: dict, run: Run, env: Mapping[str, str] = os.environ, gpu_count: Callable[[], int] | None = None,
                command: Callable[[Path], list[str]] | None = None, training: bool | None = None) -> Run:
    """Check the autostart keys and layout; on LOCAL_RANK 0 start the server (non-blocking).
    `cfg` is written to (the trainer's vLLM address, device_map) and snapshotted for the server;
    returns the run with the address it was given."""
    if not run.plugin.vllm_autostart:
        return run
    problems = autostart_problems(run)
    if problems:
        raise GRPOConfigError(problems)
    if not (is_training_process() if training is None else training):
        return run
    problems = multi_node_problems(world_size(env), local_processes(env))
    if problems:
        raise GRPOConfigError(problems)
    cpu_mode = cpu.is_cpu_vllm()  # vLLM's CPU build: no GPU layout, no pinning
    layout, visible = (cpu.CPU_GPU_LAYOUT, []) if cpu_mode else _gpu_layout(run, env, gpu_count or cuda_gpu_count)
    host = "::1" if run.vllm_host == "::1" else defaults.VLLM_HOST
    port = run.vllm_port
    run = write(cfg, run, {"trl.vllm_server_host": host, "trl.vllm_server_port": port})
    _STATE.url, _STATE.timeout = health_url(host, port), float(run.plugin.vllm_startup_timeout)
    if not cpu_mode and local_processes(env) == 1 and not any(k.startswith("ACCELERATE_USE_") for k in env) \
            and cfg.get("device_map") in (None, "auto"):
        # `--launcher python`: Axolotl would load with device_map "auto" over every
        # visible GPU, vLLM's included; keep the model on the first (a training) GPU.
        cfg["device_map"] = {"": 0}
    if local_rank(env) != 0 or _STATE.server is not None:
        return run  # one server per launch, owned by LOCAL_RANK 0
    output_dir = Path(run.output_dir)
    snapshot = write_server_config(cfg, run, output_dir / CONFIG_NAME, host, port)
    spec = ServerSpec(
        command=(command or vllm_serve_command)(snapshot),
        log_path=output_dir / LOG_NAME, host=host, port=port, gpus=layout.server_env,
        env=cpu.server_env(env) | server_env(env, layout, pin=False) if cpu_mode else server_env(env, layout),
    )
    server = VLLMServer(spec)
    install_teardown()
    server.start()
    _STATE.server = server
    if cpu_mode:
        LOG.info("started the vLLM server (pid %s) on CPU (vLLM's CPU build); log: %s", server.pid, spec.log_path)
    else:
        LOG.info("started the vLLM server (pid %s) on GPU %s for training on GPU %s; log: %s",
                 server.pid, layout.server_env, ",".join(layout.trainer), spec.log_path)
    return run


def before_model_load(run: Run, env: Mapping[str, str] = os.environ,
                      report: Callable[[str], None] | None = None) -> None:
    """A hand-started server (main process): checked before the model loads, so a missing one is
    named before minutes of loading. An autostarted one is waited for later (`before_trainer`)."""
    if _STATE.server is None and _STATE.url is None and run.server_mode and global_rank(env) == 0 \
            and is_training_process():
        check_manual_server(run, env, report or LOG.info)


def before_trainer(report: Callable[[str], None] | None = None) -> None:
    """Wait for the autostarted server just before TRL's trainer connects to it: the model (and
    Axolotl's reference copy) load while the server starts, instead of after it is up."""
    report = report or LOG.info
    if _STATE.server is not None:
        waited = time.monotonic()
        took = _STATE.server.wait_healthy(_STATE.timeout, report)
        report(f"the vLLM server is up after {took:.0f} s (the trainer, its model loaded, waited "
               f"{time.monotonic() - waited:.0f} s of them)")
        engine_check.check_engine(_STATE.url, _STATE.server.spec.log_path)  # /health/ alone can lie
    elif _STATE.url is not None:  # other local ranks: LOCAL_RANK 0 owns the server
        wait_for(_STATE.url, _STATE.timeout, report,
                 ServerError(f"no answer from {_STATE.url} within {_STATE.timeout:.0f} s.",
                             "see the error of LOCAL_RANK 0, which starts the server"))


def own_server() -> VLLMServer | None:
    """The server this process started (LOCAL_RANK 0 of an autostarted launch), else None."""
    return _STATE.server


def after_training() -> None:
    server, _STATE.server = _STATE.server, None
    _STATE.url = None
    if server is not None:
        server.retire()
        LOG.info("stopped the vLLM server")


def check_manual_server(run: Run, env: Mapping[str, str] = os.environ,
                        report: Callable[[str], None] = LOG.info, gpu_count: Callable[[], int] | None = None) -> None:
    """Autostart off: the server must be reachable; wait as long as TRL would, then explain."""
    url = health_url(run.vllm_host, run.vllm_port)
    if is_healthy(url):
        return engine_check.check_engine(url, None)
    timeout = run.trl.vllm_server_timeout
    commands = manual_commands(run, env, gpu_count or cuda_gpu_count)
    report(f"waiting up to {timeout:.0f} s for the vLLM server at {url}; start it with: {commands[0]}")
    wait_for(url, timeout, report, ServerError(
        f"no vLLM server answers {url} (waited {timeout:.0f} s, `trl.vllm_server_timeout`).",
        f"start it on the reserved GPU in a second terminal: `{commands[0]}`, then train on the "
        f"other GPU(s): `{commands[1]}`; or let the plugin start it: `grpo_plugin.vllm_autostart: true`",
    ))
    engine_check.check_engine(url, None)


def manual_commands(run: Run, env: Mapping[str, str], gpu_count: Callable[[], int]) -> tuple[str, str]:
    """The two commands of manual mode, for the GPUs of this machine."""
    config = run.config_path
    try:
        layout = run.gpu_layout(visible_gpus(env, gpu_count))
        server, trainer = layout.server_env, ",".join(layout.trainer)
    except (GpuLayoutError, RuntimeError):
        server, trainer = "1", "0"
    return (f"CUDA_VISIBLE_DEVICES={server} axolotl vllm-serve {config}",
            f"CUDA_VISIBLE_DEVICES={trainer} axolotl train {config}")


def wait_for(url: str, timeout: float, report: Callable[[str], None], error: ServerError,
             poll: float = 1.0, report_every: float = 15.0) -> None:
    started = time.monotonic()
    next_report = started + report_every
    while not is_healthy(url):
        now = time.monotonic()
        if now - started > timeout:
            raise error
        if now >= next_report:
            next_report = now + report_every
            report(f"still waiting for {url}: {now - started:.0f} s of {timeout:.0f} s")
        time.sleep(poll)


# --- the server process --------------------------------------------------------

def vllm_serve_command(config: Path) -> list[str]:
    """`axolotl vllm-serve CONFIG` with this interpreter; vLLM must be importable."""
    if importlib.util.find_spec("vllm") is None:
        raise ServerError("vLLM is not installed in this environment "
                          f"({sys.executable}), so the server cannot start.",
                          f"{INSTALL_HINT} (or turn `grpo_plugin.vllm_autostart` off)")
    return [sys.executable, "-m", "axolotl.cli.main", "vllm-serve", str(config)]


def server_env(env: Mapping[str, str], layout: GpuLayout, pin: bool = True) -> dict[str, str]:
    """Our environment minus the trainer's rank variables, on the reserved GPU(s) (`pin`)."""
    out = {k: v for k, v in env.items() if k not in DISTRIBUTED_ENV and not k.startswith("TORCHELASTIC_")}
    if pin:
        out["CUDA_VISIBLE_DEVICES"] = layout.server_env
    out[SERVER_CHILD_ENV] = "1"
    return out


def resumed_weights(run: Run) -> str | None:
    """The full-weight checkpoint a run resumes from (`resume_from_checkpoint`, or the latest
    output_dir/checkpoint-N under `auto_resume_from_checkpoints`), else None. A LoRA
    checkpoint holds only the adapter: the server then starts from base_model, and TRL pushes
    the merged policy before the first resumed generation (its `_last_loaded_step` starts at
    -1, so it syncs whatever step training resumes at)."""
    folder = resume_target(run)
    if folder is None:
        return None
    has_weights = any(folder.glob("model*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    if not (folder / "config.json").is_file() or not has_weights or (folder / "adapter_config.json").exists():
        return None
    return str(folder.resolve())


def write_server_config(cfg: Mapping[str, Any], run: Run, path: Path, host: str, port: int) -> Path:
    """The trainer's effective config (CLI overrides, resolved names) for the server to load,
    so the server serves the model that is trained. Written to a fresh temp file, then renamed
    (never through a symlink planted at `path`)."""
    data = json.loads(json.dumps(dict(cfg), default=str))
    data.pop("axolotl_config_path", None)
    set_keys(data, {"vllm.host": host, "vllm.port": port})
    checkpoint = resumed_weights(run)
    if checkpoint is not None:  # a resumed run: serve the checkpoint's policy from the start
        data["base_model"] = checkpoint
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, "# written by axolotl-grpo-plugin for the autostarted vLLM server\n"
                        + yaml.safe_dump(data, sort_keys=False))
