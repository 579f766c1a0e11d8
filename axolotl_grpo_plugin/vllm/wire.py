"""Tensors on the wire of the CPU weight push, in Axolotl 0.19's format.

Axolotl 0.19/0.20 ship the codec (`axolotl.utils.weight_serde`) and their server re-encodes
each request for vLLM's workers (raw bytes, "IPC"); Axolotl 0.21 dropped both, and its
native vLLM server hands the worker extension the JSON as sent (base64, "HTTP"). Axolotl's
functions are used where they exist, so 0.19/0.20 push exactly as before.
"""

from __future__ import annotations

import base64


def encode(name: str, weight) -> dict:
    """One named tensor as JSON: name, dtype (the original), shape, data (base64; bf16 as fp16)."""
    try:
        from axolotl.utils.weight_serde import encode_for_http
    except ImportError:
        pass
    else:
        return encode_for_http(name, weight)
    import torch

    tensor = weight.detach().contiguous().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.half()
    return {"name": name, "dtype": str(weight.dtype), "shape": list(weight.shape),
            "data": base64.b64encode(tensor.numpy().tobytes()).decode("ascii")}


def decode(entry: dict):
    """(name, tensor) from `encode`'s JSON (data: str) or Axolotl 0.19's IPC form (data: bytes)."""
    if not isinstance(entry["data"], str):
        from axolotl.utils.weight_serde import decode_from_ipc

        return decode_from_ipc(entry)
    import torch

    target = getattr(torch, entry["dtype"].split(".")[-1])
    wire = torch.float16 if target == torch.bfloat16 else target
    raw = bytearray(base64.b64decode(entry["data"]))
    tensor = torch.frombuffer(raw, dtype=wire).reshape(tuple(entry["shape"]))
    return entry["name"], tensor.to(target)
