"""Each step's peak GPU memory: `memory/peak_allocated_gib` and `memory/peak_reserved_gib`.

Axolotl logs `memory/*` from its own trainer's `log`, which its GRPO trainer does not inherit,
so a GRPO run logs no memory at all. The peak of one step (generation, scoring and the
optimizer step together) is what `axolotl-grpo plan` predicts and what an OOM is about:
`allocated` counts live tensors (the planner's terms), `reserved` adds the caching allocator's
blocks (what nvidia-smi shows, less the CUDA context). Measured on this process's device;
nothing is logged on a run without CUDA. Measuring never stops training.
"""

from __future__ import annotations

import logging
from typing import Any


LOG = logging.getLogger("axolotl_grpo_plugin")

ALLOCATED, RESERVED = "memory/peak_allocated_gib", "memory/peak_reserved_gib"
GIB = 1024**3


def attach(trainer: Any) -> bool:
    """Log the step's peak memory on a CUDA run; False (nothing attached) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return False
    trainer.add_callback(make_callback(trainer, torch.cuda))
    return True


def make_callback(trainer: Any, cuda: Any):
    """A TrainerCallback that resets the peak at each step's start and logs it at its end.
    `cuda`: `torch.cuda` (a stand-in in tests)."""
    from transformers import TrainerCallback

    class GpuMemoryCallback(TrainerCallback):
        failed = False

        def on_step_begin(self, args, state, control, **kwargs):
            if not self.failed:
                self._guard(cuda.reset_peak_memory_stats)

        def on_step_end(self, args, state, control, **kwargs):
            if not self.failed:
                self._guard(self._log)

        def _log(self):
            metrics = trainer._metrics["train"]
            metrics[ALLOCATED].append(cuda.max_memory_allocated() / GIB)
            metrics[RESERVED].append(cuda.max_memory_reserved() / GIB)

        def _guard(self, action):
            try:
                action()
            except Exception as exc:
                self.failed = True
                LOG.warning("axolotl_grpo_plugin: logging the peak GPU memory failed (%s: %s); it is "
                            "off for the rest of the run.", type(exc).__name__, exc)

    return GpuMemoryCallback()
