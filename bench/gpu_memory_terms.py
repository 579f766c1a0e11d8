"""Split a GRPO training step's GPU memory into the planner's terms, on a real GPU.

The GPU check (`axolotl-grpo gpu-check`) measures whole steps; this measures the parts, for a
grid of batch shapes, on Qwen2.5-1.5B's shape with random bf16 weights (nothing downloaded):

- `policy`: TRL 1.9's loss path as `GRPOTrainer._get_per_token_logps_and_entropies` runs it
  (gradient checkpointing, `logits_to_keep`, in-place temperature, `selective_log_softmax`,
  entropies without grad), then backward: peak above the weights, before any gradient exists.
- `logits_only`: the same from the last hidden state (lm_head and after), so the rest is the
  decoder's activations.
- `optimizer`: one fused AdamW step with every gradient present (moments created): peak above
  weights + gradients.
- `--trainer-precision`: `policy` again with the model prepared as the HF Trainer prepares it for
  `bf16: true` (accelerate's mixed precision: autocast, and the outputs converted to fp32), for
  full fine-tuning and for LoRA r=16 on every linear layer.

    python bench/gpu_memory_terms.py --out FILE.json     (on a GPU; docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen2Config


SHAPE = Path(__file__).resolve().parents[1] / "axolotl_grpo_plugin" / "gpu_check" / "qwen2.5-1.5b-instruct.json"
GIB = 1024**3
GRID = ((16, 512), (8, 512), (16, 256), (8, 256), (4, 512), (32, 256))  # (completions, completion tokens)
PROMPT = 69  # the GPU check's longest prompt with the embedded tokenizer


def peak_above(run) -> float:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / GIB


def main() -> None:
    from trl.trainer.utils import entropy_from_logits, selective_log_softmax

    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--trainer-precision", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    config = Qwen2Config(**json.loads(SHAPE.read_text()))
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.gradient_checkpointing_enable({"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    params = sum(p.numel() for p in model.parameters())
    weights = torch.cuda.memory_allocated() / GIB
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "params": params,
               "weights_gib": weights, "vocab": config.vocab_size, "prompt": PROMPT, "grid": []}

    def loss_from_logits(logits, ids, completion):
        logits = logits[:, :-1, :][:, -completion:, :]
        logits.div_(1.0)
        logps = selective_log_softmax(logits, ids[:, -completion:])
        with torch.no_grad():
            entropy_from_logits(logits)
        return -(logps * torch.randn_like(logps)).mean()

    for batch, completion in GRID:
        ids = torch.randint(0, config.vocab_size, (batch, PROMPT + completion), device="cuda")
        mask = torch.ones_like(ids)
        started = time.perf_counter()

        def policy():
            out = model(input_ids=ids, attention_mask=mask, logits_to_keep=completion + 1, use_cache=False)
            loss_from_logits(out.logits, ids, completion).backward()

        def logits_only():
            hidden = torch.randn(batch, completion + 1, config.hidden_size, device="cuda", dtype=torch.bfloat16,
                                 requires_grad=True)
            loss_from_logits(model.lm_head(hidden), ids, completion).backward()

        row = {"batch": batch, "completion": completion, "tokens": batch * (PROMPT + completion),
               "logit_copy_gib": batch * completion * config.vocab_size * 2 / GIB}
        for name, run in (("policy", policy), ("logits_only", logits_only)):
            try:
                row[f"{name}_gib"] = round(peak_above(run), 3)
            except torch.OutOfMemoryError as exc:
                row[f"{name}_gib"] = f"OOM: {exc}"[:120]
            model.zero_grad(set_to_none=True)
        row["seconds"] = round(time.perf_counter() - started, 2)
        results["grid"].append(row)
        print(row, flush=True)

    if args.trainer_precision:
        results["trainer_precision"] = trainer_precision(model, config, loss_from_logits)

    # every gradient present (as after backward), then one fused AdamW step that creates the moments
    for param in model.parameters():
        param.grad = torch.randn_like(param)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    results["optimizer_first_step_gib"] = round(peak_above(optimizer.step), 3)
    results["optimizer_next_step_gib"] = round(peak_above(optimizer.step), 3)
    results["grads_gib"] = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters()) / GIB
    print({k: v for k, v in results.items() if k != "grid"}, flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def trainer_precision(model, config, loss_from_logits) -> list[dict]:
    """`policy` peaks with accelerate's bf16 mixed precision, full and then LoRA."""
    from accelerate import Accelerator
    from peft import LoraConfig, get_peft_model

    prepared = Accelerator(mixed_precision="bf16").prepare(model)
    with torch.no_grad():
        probe = torch.zeros((1, 8), dtype=torch.long, device="cuda")
        rows = [{"logits_dtype": str(prepared(input_ids=probe, use_cache=False).logits.dtype)}]
    print(rows[0], flush=True)
    for method in ("full", "lora"):
        if method == "lora":
            prepared = get_peft_model(prepared, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=[
                "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        for batch, completion in ((16, 512), (8, 256), (16, 256), (4, 512)):
            ids = torch.randint(0, config.vocab_size, (batch, PROMPT + completion), device="cuda")

            def policy():
                out = prepared(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=completion + 1,
                               use_cache=False)
                loss_from_logits(out.logits, ids, completion).backward()

            try:
                peak = round(peak_above(policy), 3)
            except torch.OutOfMemoryError as exc:
                peak = f"OOM: {exc}"[:120]
            prepared.zero_grad(set_to_none=True)
            row = {"method": method, "batch": batch, "completion": completion, "policy_gib": peak,
                   "logit_copy_gib": batch * completion * config.vocab_size * 2 / GIB}
            rows.append(row)
            print(row, flush=True)
    return rows


if __name__ == "__main__":
    main()
