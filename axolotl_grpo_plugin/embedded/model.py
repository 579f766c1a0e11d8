"""A tiny random-weight Qwen2 causal LM that runs ``axolotl train`` on CPU in seconds.

Qwen2 is used because it is the architecture the real R1/GRPO recipes target,
so the same code paths (chat template, eos handling, tied embeddings) are hit.
"""

from __future__ import annotations

from pathlib import Path


MAX_POSITION_EMBEDDINGS = 2048


def _load_tokenizer(tokenizer_dir_or_obj):
    if isinstance(tokenizer_dir_or_obj, (str, Path)):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer_dir_or_obj))
    return tokenizer_dir_or_obj


def build_tiny_model(
    tokenizer_dir_or_obj,
    out_dir: str | Path,
    seed: int,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
):
    """Build a seeded float32 ``Qwen2ForCausalLM`` and save it with its tokenizer.

    The embedding matrix has exactly ``len(tokenizer)`` rows, so sampling can
    never produce an id the tokenizer cannot decode. Global torch RNG state is
    left untouched. Returns the model.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = _load_tokenizer(tokenizer_dir_or_obj)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=MAX_POSITION_EMBEDDINGS,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = Path(out_dir)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return model
