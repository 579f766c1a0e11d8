"""Memory planner: does a GRPO config fit a GPU, and what to change if it does not.

`axolotl-grpo plan CONFIG --gpu-type L40S` (see `--help`).
Arithmetic in `estimate`, model shapes in `dims`, GPU sizes in `gpus`.
"""

from .dims import KNOWN_MODELS, ModelDims, UnknownModel, parse_dims, resolve_dims
from .estimate import Workload, estimate_trainer, estimate_vllm, levers
from .gpus import GPUS, UnknownGPU, find_gpu, gpu_from_memory


__all__ = [
    "KNOWN_MODELS", "ModelDims", "UnknownModel", "parse_dims", "resolve_dims",
    "Workload", "estimate_trainer", "estimate_vllm", "levers",
    "GPUS", "UnknownGPU", "find_gpu", "gpu_from_memory",
]
