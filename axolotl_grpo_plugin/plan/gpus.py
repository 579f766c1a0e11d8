"""GPU memory sizes the planner checks against, as the driver reports them (MiB).

Marketing names round: an "80 GB" H100 shows 81559 MiB in nvidia-smi and a
"48 GB" L40S shows 46068 MiB, so the table holds what a process can see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class GPU:
    name: str
    memory_mib: int
    bf16: bool = True

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB


GPUS: dict[str, GPU] = {g.name.lower(): g for g in (
    GPU("H200", 143771),
    GPU("H100", 81559),
    GPU("A100-80GB", 81920),
    GPU("A100-40GB", 40960),
    GPU("L40S", 46068),
    GPU("A6000", 49140),
    GPU("A10G", 23028),
    GPU("L4", 23034),
    GPU("RTX4090", 24564),
    GPU("RTX3090", 24576, bf16=True),
    GPU("V100-32GB", 32768, bf16=False),
    GPU("T4", 15360, bf16=False),
)}
ALIASES = {"a100": "a100-80gb", "h100-80gb": "h100", "a100-80": "a100-80gb", "a100-40": "a100-40gb",
           "4090": "rtx4090", "3090": "rtx3090", "v100": "v100-32gb"}


class UnknownGPU(ValueError):
    """A `--gpu` name the table does not hold."""


def find_gpu(name: str) -> GPU:
    key = name.strip().lower().replace(" ", "").replace("_", "-")
    key = ALIASES.get(key, key)
    if key in GPUS:
        return GPUS[key]
    known = ", ".join(g.name for g in GPUS.values())
    raise UnknownGPU(f"unknown GPU {name!r}; known: {known}. "
                     "For another card pass its memory instead: --gpu-memory GIB (e.g. --gpu-memory 48)")


def gpu_from_memory(gib: float) -> GPU:
    if not 0 < gib < math.inf:  # nan and inf too: no card of that size
        raise UnknownGPU(f"--gpu-memory must be a positive number of GiB, got {gib}")
    return GPU(f"{gib:g} GiB GPU", int(round(gib * 1024)))
