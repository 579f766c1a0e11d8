"""The automatic relaunch of a plain `axolotl train CONFIG` whose accelerate launch puts a
training process on the GPU reserved for vLLM: the decision for 2/4/8 GPUs, GPU subsets
and pinned reservations; rank 0 execs the exact command and environment, the other
ranks exit 0; the marker, the opt-out and the cases that keep the error. The last test
runs the real chain (accelerate launch -> axolotl.cli.train -> exec) on CPU."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.vllm import autostart, cpu, relaunch
from axolotl_grpo_plugin.vllm.relaunch import TRAIN_MODULE, decide_relaunch, relaunch_if_needed


sys.path.insert(0, str(Path(__file__).parent))
from conftest import launch_env as env  # noqa: E402
from conftest import subprocess_env  # noqa: E402


# The real answer, taken before the module's fixture pins it: a child process sees the real one.
CHILD_SEES_CPU_VLLM = cpu.is_cpu_vllm()

# These tests describe GPU machines, which never have vLLM's CPU build in use (vllm/cpu.py).
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("clean_vllm_state", "without_cpu_vllm")]
SCRIPT_ARGS = ["configs/gsm8k.yaml", "--learning_rate=2e-6", "--trl__beta=0.04"]
PORT = 31337


def launched(processes: int, local_rank: int = 0, **extra: str) -> dict[str, str]:
    """A worker's environment under `accelerate launch` with `processes` processes on one node."""
    return env(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(processes),
               LOCAL_WORLD_SIZE=str(processes), GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500",
               TORCHELASTIC_RUN_ID="none", TORCHELASTIC_RESTART_COUNT="0",
               ACCELERATE_MIXED_PRECISION="no", ACCELERATE_DYNAMO_BACKEND="NO", ACCELERATE_USE_CPU="False",
               **extra)


def plan(cfg, worker_env, gpus: int, **kw):
    kw.setdefault("main_module", TRAIN_MODULE)
    return decide_relaunch(read_run(cfg), worker_env, lambda: gpus, SCRIPT_ARGS, free_port=lambda: PORT, **kw)


def option(args, name: str) -> str | None:
    args = list(args)
    return args[args.index(name) + 1] if name in args else None


def relaunched_env(p) -> dict[str, str]:
    """What the relaunched processes see: accelerate sets CUDA_VISIBLE_DEVICES from --gpu_ids."""
    out = dict(p.env)
    if option(p.launch_args, "--gpu_ids"):
        out["CUDA_VISIBLE_DEVICES"] = option(p.launch_args, "--gpu_ids")
    n = option(p.launch_args, "--num_processes")
    return {**out, "LOCAL_RANK": "0", "WORLD_SIZE": n, "LOCAL_WORLD_SIZE": n, "ACCELERATE_MIXED_PRECISION": "no"}


def assert_relaunch_fits(cfg, p, gpus: int) -> None:
    """The relaunched launch passes the checks that refused this one, and does not relaunch again."""
    again = relaunched_env(p)
    assert plan(cfg, again, gpus) is None
    autostart.on_register(copy.deepcopy(cfg), read_run(cfg), env={**again, "LOCAL_RANK": "1"}, gpu_count=lambda: gpus,
                          training=True)  # rank 1 would raise on a bad layout; it starts nothing


@pytest.mark.parametrize("gpus", [2, 4, 8])
def test_accelerate_default_launch_becomes_one_process_per_free_gpu(gsm8k_cfg, gpus):
    p = plan(gsm8k_cfg, launched(gpus), gpus)
    trainers = gpus - 1
    assert p.layout.server == (str(gpus - 1),)
    assert option(p.launch_args, "--num_processes") == str(trainers)
    assert "--gpu_ids" not in p.launch_args  # the free GPUs are the first ones
    assert ("--multi_gpu" in p.launch_args) == (trainers > 1)
    assert option(p.launch_args, "--main_process_port") == (str(PORT) if trainers > 1 else None)
    assert p.argv == [sys.executable, "-m", "accelerate.commands.launch", *p.launch_args, "-m", TRAIN_MODULE,
                      *SCRIPT_ARGS]
    assert p.shown.startswith("accelerate launch ") and p.shown.endswith(" ".join(SCRIPT_ARGS))
    assert f"accelerate started {gpus} training processes but GPU {gpus - 1} is reserved" in p.message()
    assert_relaunch_fits(gsm8k_cfg, p, gpus)


def test_the_command_is_one_accelerate_accepts(gsm8k_cfg):
    """Parsed and validated by accelerate's own launch code, as the relaunch will run it."""
    from accelerate.commands.config.config_args import default_config_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    if Path(default_config_file).is_file():
        pytest.skip("an accelerate config file exists here and would change the validation")
    for gpus in (2, 4):
        p = plan(gsm8k_cfg, launched(gpus), gpus)
        args, _, _ = _validate_launch_command(launch_command_parser().parse_args(p.argv[3:]))
        assert args.num_processes == gpus - 1 and args.multi_gpu == (gpus > 2)
        assert args.module and args.training_script == TRAIN_MODULE
        assert args.training_script_args == SCRIPT_ARGS


def test_cuda_visible_devices_subset(gsm8k_cfg):
    p = plan(gsm8k_cfg, launched(3, CUDA_VISIBLE_DEVICES="2,5,7"), gpus=8)
    assert p.layout.server == ("7",) and p.layout.trainer == ("2", "5")
    assert option(p.launch_args, "--num_processes") == "2" and "--gpu_ids" not in p.launch_args
    assert p.env["CUDA_VISIBLE_DEVICES"] == "2,5,7"  # kept: the new launch sees the same GPUs
    assert_relaunch_fits(gsm8k_cfg, p, gpus=8)


@pytest.mark.parametrize("gpus, visible, trainers", [
    (2, None, "1"),
    (4, None, "1,2,3"),
    (4, "0,3", "3"),
])
def test_reservation_pinned_to_a_first_gpu_needs_gpu_ids(gsm8k_cfg, gpus, visible, trainers):
    gsm8k_cfg["grpo_plugin"]["vllm_gpus"] = [0]
    extra = {"CUDA_VISIBLE_DEVICES": visible} if visible else {}
    processes = len(visible.split(",")) if visible else gpus
    p = plan(gsm8k_cfg, launched(processes, **extra), gpus)
    assert p.layout.server == ("0",)
    assert option(p.launch_args, "--gpu_ids") == trainers
    assert option(p.launch_args, "--num_processes") == str(len(trainers.split(",")))
    assert_relaunch_fits(gsm8k_cfg, p, gpus)


def test_a_smaller_launch_on_purpose_keeps_its_size(gsm8k_cfg):
    """One process on 4 GPUs with vLLM pinned to GPU 0: move it, do not grow it."""
    gsm8k_cfg["grpo_plugin"]["vllm_gpus"] = [0]
    p = plan(gsm8k_cfg, launched(1), gpus=4)
    assert option(p.launch_args, "--num_processes") == "1" and option(p.launch_args, "--gpu_ids") == "1"


def test_the_users_launcher_options_are_kept_and_ours_replace_theirs(gsm8k_cfg):
    outer = ["--num-processes=4", "--main_process_port", "29600", "--mixed_precision", "bf16",
             "--gpu_ids", "0,1,2,3", "--multi_gpu"]
    p = plan(gsm8k_cfg, launched(4), 4, outer_args=outer)
    args = list(p.launch_args)
    assert option(args, "--mixed_precision") == "bf16"
    assert option(args, "--num_processes") == "3" and option(args, "--main_process_port") == str(PORT)
    assert "29600" not in args and "0,1,2,3" not in args and not any(a.startswith("--num-") for a in args)
    assert args.count("--multi_gpu") == 1


def test_an_accelerate_config_file_chooses_the_distributed_type(gsm8k_cfg):
    assert "--multi_gpu" not in plan(gsm8k_cfg, launched(4), 4, accelerate_config=True).launch_args
    p = plan(gsm8k_cfg, launched(4), 4, outer_args=["--config_file", "ds.yaml"])
    assert "--multi_gpu" not in p.launch_args and option(p.launch_args, "--config_file") == "ds.yaml"


def test_the_outer_launch_environment_is_scrubbed(gsm8k_cfg):
    worker = launched(2, ACCELERATE_LOG_LEVEL="info", MY_SETTING="kept", TORCHELASTIC_ERROR_FILE="/tmp/e.json",
                      ACCELERATE_DYNAMO_MODE="default", HF_HOME="/data/hf")
    p = plan(gsm8k_cfg, worker, 2)
    for gone in autostart.DISTRIBUTED_ENV + ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_ERROR_FILE",
                                             "ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND",
                                             "ACCELERATE_DYNAMO_MODE", "ACCELERATE_USE_CPU"):
        assert gone not in p.env, gone
    assert p.env["MY_SETTING"] == "kept" and p.env["ACCELERATE_LOG_LEVEL"] == "info"
    assert p.env["HF_HOME"] == "/data/hf"
    assert p.env[autostart.RELAUNCHED_ENV] == "1"


@pytest.mark.parametrize("case", ["fits", "torchrun", "launcher python", "multi-node", "too few GPUs",
                                  "relaunched", "opted out", "colocate"])
def test_no_relaunch(gsm8k_cfg, case):
    worker, gpus, module = launched(2), 2, TRAIN_MODULE
    if case == "fits":
        worker = launched(1)
    elif case == "torchrun":
        worker = {k: v for k, v in worker.items() if not k.startswith("ACCELERATE_")}
    elif case == "launcher python":
        module = None
    elif case == "multi-node":
        worker["WORLD_SIZE"] = "4"
    elif case == "too few GPUs":
        gpus = 1
    elif case == "relaunched":
        worker[autostart.RELAUNCHED_ENV] = "1"
    elif case == "opted out":
        gsm8k_cfg["grpo_plugin"]["vllm_relaunch"] = False
    elif case == "colocate":
        gsm8k_cfg["trl"]["vllm_mode"] = "colocate"
    assert plan(gsm8k_cfg, worker, gpus, main_module=module) is None


class Execd(Exception):
    """Raised by the exec stub: a real exec never returns."""


def exec_stub(calls: list):
    def execvpe(file, argv, environment):
        calls.append((file, list(argv), dict(environment)))
        raise Execd

    return execvpe


def run_hook(cfg, worker, calls, gpus=2, **kw):
    relaunch_if_needed(read_run(cfg), env=worker, gpu_count=lambda: gpus, argv=["/x/axolotl/cli/train.py", *SCRIPT_ARGS],
                       main_module=TRAIN_MODULE, outer_cmdline=[], accelerate_config=False,
                       execvpe=exec_stub(calls), **kw)


def test_other_local_ranks_exit_0_without_starting_a_server(gsm8k_cfg):
    calls: list = []
    with pytest.raises(SystemExit) as exited:
        run_hook(gsm8k_cfg, launched(2, local_rank=1), calls)
    assert exited.value.code == 0
    assert not calls and autostart._STATE.server is None
    assert not (Path(gsm8k_cfg["output_dir"]) / autostart.CONFIG_NAME).exists()


@pytest.mark.parametrize("gpus", [2, 4])
def test_local_rank_0_execs_the_new_launch(gsm8k_cfg, caplog, gpus):
    calls: list = []
    with caplog.at_level("INFO", logger="axolotl_grpo_plugin.vllm"), pytest.raises(Execd):
        run_hook(gsm8k_cfg, launched(gpus), calls, gpus=gpus)
    [(file, argv, new_env)] = calls
    assert file == sys.executable and argv[0] == sys.executable
    if gpus == 2:
        launch = ["--num_processes", "1"]
    else:
        port = option(argv, "--main_process_port")
        assert port.isdigit() and port != "29500"  # a free port, not the outer launch's
        launch = ["--multi_gpu", "--num_processes", "3", "--main_process_port", port]
    assert argv[1:] == ["-m", "accelerate.commands.launch", *launch, "--quiet", "-m", TRAIN_MODULE, *SCRIPT_ARGS]
    assert new_env[autostart.RELAUNCHED_ENV] == "1"
    assert not {"LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "TORCHELASTIC_RUN_ID"} & set(new_env)
    assert autostart._STATE.server is None  # the relaunched process starts the server
    [message] = [r.getMessage() for r in caplog.records if "relaunching" in r.getMessage()]
    assert (f"accelerate started {gpus} training processes but GPU {gpus - 1} is reserved for vLLM: relaunching as "
            f"`accelerate launch {' '.join(launch)} --quiet -m axolotl.cli.train configs/gsm8k.yaml") in message


def test_a_failed_exec_is_a_readable_exit(gsm8k_cfg):
    def missing(file, argv, environment):
        raise FileNotFoundError(2, "No such file or directory", file)

    with pytest.raises(SystemExit) as exited:
        relaunch_if_needed(read_run(gsm8k_cfg), env=launched(2), gpu_count=lambda: 2, argv=["train.py", *SCRIPT_ARGS],
                           main_module=TRAIN_MODULE, outer_cmdline=[], accelerate_config=False, execvpe=missing)
    assert "could not relaunch as `accelerate launch --num_processes 1" in exited.value.code
    assert "fix: run it yourself" in exited.value.code


def test_the_marker_turns_a_second_mismatch_into_the_error(gsm8k_cfg):
    calls: list = []
    worker = launched(2, **{autostart.RELAUNCHED_ENV: "1"})
    run_hook(gsm8k_cfg, worker, calls)  # returns: no second relaunch
    assert not calls
    with pytest.raises(GRPOConfigError) as error:
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=worker, gpu_count=lambda: 2, training=True)
    text = str(error.value)
    assert "already the plugin's automatic relaunch" in text
    assert "axolotl train configs/gsm8k.yaml -- --num_processes 1" in text


def test_opting_out_keeps_the_error(gsm8k_cfg):
    calls: list = []
    gsm8k_cfg["grpo_plugin"]["vllm_relaunch"] = False
    run_hook(gsm8k_cfg, launched(2), calls)
    assert not calls
    with pytest.raises(GRPOConfigError, match="LOCAL_RANK 1 on GPU 1"):
        autostart.on_register(gsm8k_cfg, read_run(gsm8k_cfg), env=launched(2), gpu_count=lambda: 2, training=True)


@pytest.mark.parametrize("cmdline, expected", [
    (["/venv/bin/python3", "/venv/bin/accelerate", "launch", "-m", TRAIN_MODULE, "c.yaml"], []),
    (["/venv/bin/python3", "/venv/bin/accelerate", "launch", "--num_processes", "2", "--mixed_precision=bf16",
      "-m", TRAIN_MODULE, "c.yaml", "--learning_rate=1"], ["--num_processes", "2", "--mixed_precision=bf16"]),
    (["/venv/bin/python", "-m", "accelerate.commands.launch", "--quiet", "-m", TRAIN_MODULE, "c.yaml"], ["--quiet"]),
    (["/venv/bin/python", "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", TRAIN_MODULE], []),
    (["/venv/bin/python", "-m", "pytest"], []),
    (None, []),
])
def test_outer_launcher_args(cmdline, expected):
    assert relaunch.outer_launcher_args(cmdline) == expected


def test_parent_cmdline_reads_a_process_command_line():
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("no /proc here")
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)", "an argument", ""]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "up\n"  # running, past the exec
        assert relaunch.parent_cmdline(child.pid) == argv[:-1]  # empty arguments are dropped
    finally:
        child.kill()
        child.communicate()
    assert relaunch.parent_cmdline(2**22 + 12345) is None  # no such process


@pytest.mark.integration
@pytest.mark.timeout(500)
@pytest.mark.parametrize("gpus", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_real_accelerate_launch_on_fake_gpus_relaunches_once(tmp_path, repo_root, gpus):
    """`accelerate launch` starts one process per "GPU" (CUDA_VISIBLE_DEVICES on a CPU
    machine), as it does on a real machine without an accelerate config: the ranks > 0
    exit 0, rank 0 logs one line and execs `accelerate launch --num_processes N`, whose
    processes check the config and (no GPU here) stop with the plugin's CPU error. The
    outer torch elastic agent waits on the exec'd PID and reports exactly that failure,
    with no failure of the ranks that left; with 3 trainers the new launch's own
    rendezvous runs on a new port while the outer agent still holds its own."""
    cfg = yaml.safe_load((repo_root / "configs" / "gsm8k.yaml").read_text())
    cfg["output_dir"] = str(tmp_path / "out")
    config = tmp_path / "gsm8k.yaml"
    config.write_text(yaml.safe_dump(cfg))
    accelerate = Path(sys.executable).parent / "accelerate"
    proc = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", str(gpus), "--main_process_port", "0",
         "-m", TRAIN_MODULE, str(config), "--learning_rate=2e-6"],
        cwd=tmp_path, capture_output=True, text=True, timeout=480,
        env=subprocess_env(CUDA_VISIBLE_DEVICES=",".join(map(str, range(gpus))), HF_HOME=str(tmp_path / "hf")),
    )
    out = proc.stdout + proc.stderr
    trainers = gpus - 1
    assert out.count("relaunching as") == 1, out[-4000:]
    launch = "--num_processes 1" if trainers == 1 else f"--multi_gpu --num_processes {trainers} --main_process_port "
    assert f"GPU {gpus - 1} is reserved for vLLM: relaunching as `accelerate launch {launch}" in out
    assert f"--quiet -m axolotl.cli.train {config} --learning_rate=2e-6`" in out
    # the relaunched processes ran our checks: without a GPU, the CPU build of vLLM (.venv-vllm) makes
    # this a CPU run whose first problem is bf16; any other vLLM build needs GPUs
    first_problem = "there is no GPU; transformers refuses bf16" if CHILD_SEES_CPU_VLLM else "this config needs GPUs (vLLM generation"
    assert first_problem in out
    assert out.count("axolotl-grpo-plugin found") == trainers  # once per relaunched process
    assert proc.returncode != 0
    outer_summary = out[out.rindex("axolotl.cli.train FAILED"):]
    assert "<NO_OTHER_FAILURES>" in outer_summary and "rank      : 0 (local_rank: 0)" in outer_summary
    assert not (tmp_path / "out" / autostart.CONFIG_NAME).exists()
