"""Does a weight push reach a running CPU vLLM server? Compare its logprobs with the model's.

    . .venv-vllm/bin/activate
    axolotl vllm-serve configs/cpu-vllm-server.yaml &          # port 8437, wait for /health/
    PYTHONPATH=. python bench/vllm_cpu_push_check.py http://127.0.0.1:8437 .cache/embedded/tiny-qwen2-hd32 [--split]

Prints the largest |logprob(vLLM) - logprob(HF model)| over 16 sampled tokens: on the
base weights, after perturbing the HF model (the server not yet updated), and after
pushing the perturbed weights with the plugin's client code, layer by layer (default) or
with `--split`: k/v projections in a second request, so the fused qkv_proj module gets
part of its tensors per request (what the layer-wise push exists to avoid).
"""

from __future__ import annotations

import sys
import time

import requests
import torch
from transformers import AutoModelForCausalLM

from axolotl_grpo_plugin.vllm.cpu_sync import _post_group, layer_groups


PROMPT = [5, 17, 42, 99, 7, 8, 9, 10]


class Client:
    def __init__(self, url: str):
        self.base_url, self.session = url, requests.Session()


def logprob_gap(url: str, model) -> float:
    reply = requests.post(f"{url}/generate/", json={"prompts": [PROMPT], "n": 1, "temperature": 1.0,
                                                    "max_tokens": 16, "logprobs": 0}, timeout=120).json()
    ids, served = reply["completion_ids"][0], [lp[0] for lp in reply["logprobs"][0]]
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT + ids])).logits[0, len(PROMPT) - 1:-1]
        mine = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
    return (mine - torch.tensor(served)).abs().max().item()


def main(url: str, model_dir: str, split: bool) -> None:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    print(f"server as started: max |diff| {logprob_gap(url, model):.3g}")
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    print(f"model perturbed, server not updated: max |diff| {logprob_gap(url, model):.3g}")
    client, named = Client(url), [(n, p.data) for n, p in model.named_parameters()]
    started = time.perf_counter()
    if split:
        is_kv = [("k_proj" in n or "v_proj" in n) for n, _ in named]
        _post_group(client, [pair for pair, kv in zip(named, is_kv) if not kv])
        _post_group(client, [pair for pair, kv in zip(named, is_kv) if kv])
    else:
        for _, group in layer_groups(named):
            _post_group(client, group)
    client.session.post(f"{url}/reset_prefix_cache/", timeout=30)
    took = time.perf_counter() - started
    print(f"pushed ({'split modules' if split else 'layer by layer'}) in {took:.2f} s: "
          f"max |diff| {logprob_gap(url, model):.3g}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--split"]
    main(args[0], args[1], "--split" in sys.argv[1:])
