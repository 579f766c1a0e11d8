"""The GRPO trainer's compute on CPU without TRL or a server, shared by the CPU step benches.

Per step, `micro` micro-batches of one sequence of random length (150-450 tokens; the same lengths
for the same seed, so every arm or setting sees the same work) through a forward under bfloat16
autocast with float32 logits (what `grpo_plugin.cpu_bf16` trains with), a token log-prob loss and
a backward; then gradient clipping and AdamW. Why shared: bench_malloc_rss.py (memory under glibc
settings) and bench_cpu_lora_step.py (LoRA against a full fine-tune) must time the same loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any


def load_model(model_dir: str, seed: int, lora_rank: int = 0) -> Any:
    """The float32 model as the plugin's cpu_bf16 trains it; with `lora_rank`, wrapped as Axolotl's
    `adapter: lora`, `lora_target_linear: true` builds it (alpha = 2 x rank, no dropout)."""
    import torch
    from transformers import AutoModelForCausalLM

    from axolotl_grpo_plugin.training.cpu_bf16 import float32_output_layer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    float32_output_layer(model)
    return model


def run_steps(model: Any, steps: int, micro: int, seed: int,
              after_step: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds per step for the forwards and backwards (`compute_s`) and for clipping and AdamW
    (`adamw_s`); `after_step` runs after each step, outside the timers."""
    import torch

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-7)
    lengths = random.Random(seed)
    vocab = model.config.vocab_size
    compute, update = [], []
    for _ in range(steps):
        started = time.perf_counter()
        for _ in range(micro):
            ids = torch.randint(0, vocab, (1, lengths.randint(150, 450)))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(input_ids=ids).logits[:, :-1]
            logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            (-logps.mean() / micro).backward()
            del logits, logps
        middle = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        compute.append(middle - started)
        update.append(time.perf_counter() - middle)
        after_step()
    return {"compute_s": compute, "adamw_s": update}
