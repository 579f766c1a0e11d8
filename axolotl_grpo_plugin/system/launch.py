"""What this process is part of: the launch (training processes, GPU or not), its rank and
its node, read from the variables accelerate/torchrun set. One place, so the checks, the
vLLM autostart/relaunch and the evaluator agree on who is rank 0."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass


# Set by the plugin: in the vLLM server it starts (whose config the trainer already checked),
# and on the launch vllm/relaunch.py execs (so a second mismatch errors instead of looping).
SERVER_CHILD_ENV = "AXOLOTL_GRPO_PLUGIN_VLLM_SERVER"
RELAUNCHED_ENV = "AXOLOTL_GRPO_PLUGIN_RELAUNCHED"
# Set by torchrun/accelerate for each training rank.
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                   "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Launch:
    """What the config will run on: training processes and whether a GPU is there."""

    processes: int | None = 1  # None: not a training launch (e.g. `axolotl vllm-serve`)
    has_gpu: bool = True
    # GPU ids this launch sees (CUDA_VISIBLE_DEVICES order); None: unknown, the GPU layout of
    # vLLM autostart is not checked (a process that starts no server, e.g. `axolotl preprocess`).
    gpus: tuple[str, ...] | None = None
    local_processes: int | None = None  # training processes on this node; None: all of them
    machine_gpus: int | None = None  # GPUs on this machine (nvidia-smi numbering); None: unknown

    @property
    def node_processes(self) -> int:
        return int(self.local_processes or self.processes or 1)


def current_launch(env: Mapping[str, str] = os.environ, argv: list[str] | None = None) -> Launch:
    """The launch this process belongs to: accelerate/torchrun set WORLD_SIZE per rank."""
    argv = sys.argv if argv is None else argv
    world_size = env.get("WORLD_SIZE")
    serving = not world_size and any(a.replace("_", "-") == "vllm-serve" for a in argv[1:3])
    from ..config.gpus import visible_gpus

    count = cuda_gpu_count()
    return Launch(processes=None if serving else int(world_size or 1), has_gpu=count > 0,
                  gpus=tuple(visible_gpus(env, lambda: count)), local_processes=local_processes(env),
                  machine_gpus=count if env.get("CUDA_VISIBLE_DEVICES") is None else machine_gpu_count())


def global_rank(env: Mapping[str, str] = os.environ) -> int:
    return int(env.get("RANK") or env.get("LOCAL_RANK") or 0)


def local_rank(env: Mapping[str, str] = os.environ) -> int:
    return int(env.get("LOCAL_RANK") or 0)


def local_processes(env: Mapping[str, str] = os.environ) -> int:
    return int(env.get("LOCAL_WORLD_SIZE") or env.get("WORLD_SIZE") or 1)


def world_size(env: Mapping[str, str] = os.environ) -> int:
    return int(env.get("WORLD_SIZE") or 1)


def cuda_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def has_cuda_gpu() -> bool:
    """Whether torch sees a CUDA GPU. On Linux without the NVIDIA driver's device the answer is
    no without importing torch (seconds), so tools that only read a config stay quick."""
    if sys.platform == "linux" and not os.path.exists("/dev/nvidiactl"):
        return False
    return cuda_gpu_count() > 0


def machine_gpu_count() -> int | None:
    """GPUs on the machine whatever CUDA_VISIBLE_DEVICES hides (NVML), None when unknown."""
    try:
        import torch

        count = torch.cuda._raw_device_count_nvml()  # private, hence the guard: -1 on failure
    except Exception:  # noqa: BLE001 - no NVML, no CUDA build, an API change: unknown
        return None
    return count if isinstance(count, int) and count >= 0 else None


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as `nproc` counts them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def one_thread_warning(env: Mapping[str, str] = os.environ, cores: int | None = None) -> str | None:
    """For a config the plugin does not train (SFT, DPO: no `rl: grpo`, no plugin), whose run
    the plugin cannot give every core (training/threads.py does, for its own runs). Why: on a machine
    without a GPU, `axolotl train` runs `accelerate launch`, which sets OMP_NUM_THREADS=1 for the
    trainer unless the caller set it (accelerate/commands/launch.py), so torch trains on one core
    of many. Said before the launch, where an unset variable still means the user did not choose."""
    cores = available_cores() if cores is None else cores
    if env.get("OMP_NUM_THREADS") or cores < 2:
        return None
    return (f"OMP_NUM_THREADS is not set: on CPU, `axolotl train` (accelerate launch) then gives the trainer "
            f"one thread, one of this machine's {cores} cores, and this config does not run the GRPO plugin, "
            "which would use them all. List `axolotl_grpo_plugin.CPUThreadsPlugin` under `plugins:`, or "
            f"launch with `OMP_NUM_THREADS={cores} axolotl train CONFIG`, to train on all of them (an SFT step of SmolLM2-135M ran 1.89x faster with 2 threads on 2 cores: "
            "docs/benchmarks.md, \"Torch threads on CPU\").")
