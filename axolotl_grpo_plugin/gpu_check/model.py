"""The GPU check's model: Qwen2.5-1.5B-Instruct's shape with random weights, built offline.

Nothing is downloaded: the shape is the public config.json kept beside this file, the weights
are drawn (bf16; a normal init keeps every next token about equally likely, so completions
run to `max_completion_length`, the peak the planner predicts) and the tokenizer is the
embedded one (a Qwen2 byte-level BPE with ChatML, built in a second). Its ~700 tokens are a
slice of the model's 151,936: prompts are shorter in tokens than with Qwen's own tokenizer,
which the planner is told (`plan --from-data` measures them with this tokenizer).
`--emulate` shrinks the shape to run on CPU in fp32.
"""

from __future__ import annotations

import json
from pathlib import Path


SHAPE = Path(__file__).with_name("qwen2.5-1.5b-instruct.json")
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_window_layers": 2}
STAMP = "gpu-check-model.json"


def build_model(out_dir: Path, tiny: bool, seed: int = 0) -> Path:
    """Write the model folder once (a stamp marks it complete); returns it."""
    stamp = {"shape": SHAPE.name, "tiny": tiny, "seed": seed}
    if _read_stamp(out_dir) == stamp:
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from ..embedded.builder import write_atomically
    from ..embedded.tokenizer import build_tokenizer

    shape = json.loads(SHAPE.read_text(encoding="utf-8")) | (TINY if tiny else {})

    def write(target: Path) -> None:
        tokenizer = build_tokenizer()
        config = Qwen2Config(**shape)
        config.bos_token_id = config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
        torch.manual_seed(seed)
        dtype = torch.float32 if tiny else torch.bfloat16
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
        (target / STAMP).write_text(json.dumps(stamp) + "\n", encoding="utf-8")

    write_atomically(out_dir, write)
    return out_dir


def _read_stamp(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
