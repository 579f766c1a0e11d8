"""The GRPO trainer's compute on CPU without TRL or a server, shared by the CPU step benches.

Per step, `sequences` prompt + completion pairs of random lengths (`shape`; by default a GRPO
rollout's, prompt 100-200 tokens and completion 50-250; the same for the same seed, so every arm
or setting sees the same work) in micro-batches of `batch`, padded as TRL pads (prompts on the
left, completions on the right, each micro-batch as wide as its longest: what the plugin's
padding trim leaves): a forward under bfloat16 autocast with float32 logits (what
`grpo_plugin.cpu_bf16` trains with) computing logits for the completion positions only (TRL's
`logits_to_keep`), a masked token log-prob loss and a backward; then gradient clipping and AdamW.
Why shared: bench_malloc_rss.py (memory under glibc settings) and bench_cpu_lora_step.py (LoRA
against a full fine-tune, micro-batch sizes) must time the same loop.
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


def rollout_shape(draw: random.Random) -> tuple[int, int]:
    """A GRPO rollout's (prompt, completion) lengths on GSM8K: prompt 100-200, completion 50-250."""
    return draw.randint(100, 200), draw.randint(50, 250)


def whole_sequence_shape(draw: random.Random) -> tuple[int, int]:
    """One sequence of 150-450 tokens, every position scored (a one-token prompt)."""
    return 1, draw.randint(150, 450) - 1


SHAPES = {"rollout": rollout_shape, "whole": whole_sequence_shape}


def run_steps(model: Any, steps: int, sequences: int, seed: int, batch: int = 1,
              shape: Callable[[random.Random], tuple[int, int]] = rollout_shape,
              after_step: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds per step for the forwards and backwards (`compute_s`) and for clipping and AdamW
    (`adamw_s`); `after_step` runs after each step, outside the timers."""
    import torch

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-7)
    lengths = random.Random(seed)
    vocab = model.config.vocab_size
    micro_batches = -(-sequences // batch)
    compute, update = [], []
    for _ in range(steps):
        pairs = [shape(lengths) for _ in range(sequences)]
        started = time.perf_counter()
        for first in range(0, sequences, batch):
            group = pairs[first:first + batch]
            # as TRL lays a batch out: prompts padded on the left, completions on the right
            prompt_width, keep = max(p for p, _ in group), max(c for _, c in group)
            ids = torch.randint(0, vocab, (len(group), prompt_width + keep))
            mask = torch.zeros_like(ids)
            completion = torch.zeros(len(group), keep)
            for row, (prompt, length) in enumerate(group):
                mask[row, prompt_width - prompt:prompt_width + length] = 1
                completion[row, :length] = 1
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep + 1).logits[:, :-1]
            logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, -keep:, None]).squeeze(-1)
            (-(logps * completion).sum() / completion.sum() / micro_batches).backward()
            del logits, logps
        middle = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        compute.append(middle - started)
        update.append(time.perf_counter() - middle)
        after_step()
    return {"compute_s": compute, "adamw_s": update}
