"""The GPU check's cases: one Axolotl GRPO config each, shaped like configs/gsm8k.yaml's trainer.

Each case is what the planner predicts for one training process with transformers generation
(`use_vllm: false`: vLLM is far over what the GPU machine can carry, and the trainer is what
the planner's peak is about): full fine-tuning and LoRA in bf16 with gradient checkpointing,
16 completions of up to 512 tokens a step like configs/gsm8k.yaml. A third case halves the
micro-batch and the completion, so the fixed terms (weights, optimizer) and the per-token ones
(activations, logits, KV cache) can be told apart. The tools case is configs/gsm8k-tools.yaml's
trainer: the calculator through TRL's tool loop, Qwen2.5's template (its tool block lengthens
every prompt) and 768 completion tokens; random weights never write a call, so it measures the
memory and the config path, not the calls. `--emulate` runs the same configs on CPU in
fp32 with a tiny shape and short completions: the plumbing, not the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


PACKAGE = Path(__file__).resolve().parents[1]
DATASET = PACKAGE / "data" / "gsm8k_sample.jsonl"  # bundled, generated GSM8K-style rows


@dataclass(frozen=True)
class Case:
    name: str
    method: str  # "full" or "lora"
    micro_batch_size: int
    num_generations: int
    completion_tokens: int
    tools: tuple[str, ...] = ()

    def describe(self) -> str:
        return (f"{self.method}, {self.micro_batch_size} completions a step "
                f"({self.micro_batch_size // self.num_generations} prompt x {self.num_generations}), "
                f"up to {self.completion_tokens} tokens" + (f", tools {', '.join(self.tools)}" if self.tools else ""))


# name, method, micro_batch_size (completions a step), num_generations (1 prompt a step), completion tokens
GPU_CASES = (
    Case("full", "full", 16, 16, 512),
    Case("lora", "lora", 16, 16, 512),
    Case("full-half-batch", "full", 8, 8, 256),
    Case("tools", "full", 16, 16, 768, tools=("calculator",)),
)
EMULATED_CASES = (
    Case("full", "full", 4, 4, 16),
    Case("lora", "lora", 4, 4, 16),
    Case("tools", "full", 4, 4, 128, tools=("calculator",)),  # check: one tool round + an answer
)


def config(case: Case, model: str, output_dir: Path, steps: int, on_gpu: bool) -> dict:
    """The case's Axolotl config (a dict, written as yaml by `write_config`)."""
    cfg = {
        "base_model": model,
        "plugins": ["axolotl_grpo_plugin.GRPOPlugin"],
        "rl": "grpo",
        "chat_template": "tokenizer_default",
        "trl": {
            "beta": 0.0,
            "use_vllm": False,
            "num_generations": case.num_generations,
            "max_completion_length": case.completion_tokens,
            "temperature": 1.0,
            "reward_funcs": ["correctness", "int", "strict_format", "soft_format", "xmlcount"],
        },
        "datasets": [{"path": str(DATASET), "type": "gsm8k"}],
        "val_set_size": 0.0,
        "output_dir": str(output_dir),
        "dataset_prepared_path": str(output_dir / "prepared"),
        "micro_batch_size": case.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "max_steps": steps,
        "optimizer": "adamw_torch_fused" if on_gpu else "adamw_torch",
        "lr_scheduler": "constant",
        "learning_rate": 1.0e-5 if case.method == "lora" else 1.0e-6,
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 0,
    }
    if on_gpu:
        cfg |= {"bf16": True, "tf32": True, "attn_implementation": "sdpa"}
    else:
        cfg |= {"bf16": False, "fp16": False, "dataloader_pin_memory": False}
    if case.tools:  # as configs/gsm8k-tools.yaml: a template TRL parses tool calls from
        cfg |= {"chat_template": "qwen_25",
                "grpo_plugin": {"tools": list(case.tools), "max_tool_calls": 8, "tool_timeout_s": 10}}
    if case.method == "lora":
        cfg |= {"adapter": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_target_linear": True}
    return cfg


def write_config(case: Case, model: str, output_dir: Path, steps: int, on_gpu: bool) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "config.yaml"
    path.write_text(f"# GPU check case {case.name}: {case.describe()}\n"
                    + yaml.safe_dump(config(case, model, output_dir, steps, on_gpu), sort_keys=False))
    return path
