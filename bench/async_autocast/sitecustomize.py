"""Measurement aid, never installed: makes `torch.autocast("cpu", dtype=torch.bfloat16)` a no-op.

Axolotl 0.21's async GRPO trainer computes the policy's log-probs under bf16 autocast whatever the
model's dtype. Put this folder first on PYTHONPATH to see the float32 gap without it
(docs/versions.md, "Async GRPO"):

    PYTHONPATH=bench/async_autocast python -m pytest -s -p no:anyio tests/test_vllm_cpu_e2e.py -k async
"""

import contextlib

import torch


_autocast = torch.autocast


class _Autocast:
    def __new__(cls, device_type, dtype=None, *args, **kwargs):
        if device_type == "cpu" and dtype == torch.bfloat16:
            return contextlib.nullcontext()
        return _autocast(device_type, dtype, *args, **kwargs)


torch.autocast = _Autocast
