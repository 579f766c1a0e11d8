"""Model dimensions for the memory planner, without downloading anything.

The planner needs only a handful of numbers (hidden size, layers, vocabulary,
MLP width, attention heads). They come from, in order: explicit `--dims`, a
local model directory's `config.json`, or a table of the public dimensions of
the Hub models our configs use. Anything else is an error that names `--dims`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class UnknownModel(ValueError):
    """The model's dimensions are not available offline, or `--dims` does not give them."""


@dataclass(frozen=True)
class ModelDims:
    """A decoder-only transformer with grouped-query attention and a gated (SwiGLU) MLP."""

    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int = 0  # 0: hidden // heads
    tied: bool = False  # lm_head shares the embedding matrix
    qkv_bias: bool = False  # Qwen2 has biases on q, k and v
    max_position: int = 32768  # colocated vLLM sizes its context from this

    def __post_init__(self):
        for name in ("hidden", "layers", "vocab", "intermediate", "heads", "kv_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model dimension {name} must be positive, got {getattr(self, name)}")
        if self.head_dim <= 0:
            object.__setattr__(self, "head_dim", self.hidden // self.heads)

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one decoder layer, by module name."""
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        return {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }

    def layer_linear_params(self) -> int:
        """Weights of one layer's linear layers: what QLoRA quantizes to 4 bits."""
        return sum(a * b for a, b in self.linear_shapes().values())

    def layer_other_params(self) -> int:
        """Norms and biases of one layer (kept in 16 bits under QLoRA)."""
        bias = self.q_dim + 2 * self.kv_dim if self.qkv_bias else 0
        return 2 * self.hidden + bias

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def lm_head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    def total_params(self) -> int:
        per_layer = self.layer_linear_params() + self.layer_other_params()
        return (self.embedding_params() + self.lm_head_params()
                + self.layers * per_layer + self.hidden)

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """K and V for one token across all layers: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.layers * self.kv_dim * dtype_bytes


# Public config.json values of the Hub models the configs name (no download needed).
_QWEN = dict(vocab=151936, qkv_bias=True, max_position=32768)
_LLAMA3 = dict(vocab=128256, max_position=131072)
KNOWN_MODELS: dict[str, ModelDims] = {
    "Qwen/Qwen2.5-0.5B-Instruct": ModelDims(hidden=896, layers=24, intermediate=4864, heads=14,
                                            kv_heads=2, tied=True, **_QWEN),
    "Qwen/Qwen2.5-1.5B-Instruct": ModelDims(hidden=1536, layers=28, intermediate=8960, heads=12,
                                            kv_heads=2, tied=True, **_QWEN),
    "Qwen/Qwen2.5-3B-Instruct": ModelDims(hidden=2048, layers=36, intermediate=11008, heads=16,
                                          kv_heads=2, tied=True, **_QWEN),
    "Qwen/Qwen2.5-7B-Instruct": ModelDims(hidden=3584, layers=28, intermediate=18944, heads=28,
                                          kv_heads=4, tied=False,
                                          **{**_QWEN, "vocab": 152064}),
    "meta-llama/Llama-3.2-1B-Instruct": ModelDims(hidden=2048, layers=16, intermediate=8192,
                                                  heads=32, kv_heads=8, head_dim=64, tied=True,
                                                  **_LLAMA3),
    "meta-llama/Llama-3.2-3B-Instruct": ModelDims(hidden=3072, layers=28, intermediate=8192,
                                                  heads=24, kv_heads=8, head_dim=128, tied=True,
                                                  **_LLAMA3),
    "meta-llama/Llama-3.1-8B-Instruct": ModelDims(hidden=4096, layers=32, intermediate=14336,
                                                  heads=32, kv_heads=8, tied=False, **_LLAMA3),
    # the smollm2-* configs' model (`axolotl-grpo fetch-model smollm2-135m`), a Llama
    "HuggingFaceTB/SmolLM2-135M-Instruct": ModelDims(hidden=576, layers=30, vocab=49152, intermediate=1536,
                                                     heads=9, kv_heads=3, head_dim=64, tied=True,
                                                     max_position=8192),
}
# Base (non-Instruct) checkpoints share their Instruct sibling's shapes.
for _name, _dims in list(KNOWN_MODELS.items()):
    KNOWN_MODELS[_name.removesuffix("-Instruct")] = _dims

_DIM_KEYS = {
    "hidden": "hidden", "layers": "layers", "vocab": "vocab", "intermediate": "intermediate",
    "heads": "heads", "kv_heads": "kv_heads", "head_dim": "head_dim", "tied": "tied",
    "qkv_bias": "qkv_bias", "max_position": "max_position",
}
REQUIRED_DIMS = ("hidden", "layers", "vocab", "intermediate", "heads")


def parse_dims(text: str) -> ModelDims:
    """`hidden=1536,layers=28,vocab=151936,intermediate=8960,heads=12,kv_heads=2` -> ModelDims."""
    values: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in _DIM_KEYS:
            raise UnknownModel(f"--dims: {part!r} is not KEY=VALUE with KEY one of {', '.join(_DIM_KEYS)}")
        if key in ("tied", "qkv_bias"):
            values[key] = raw.strip().lower() in ("1", "true", "yes")
        else:
            try:
                values[key] = int(raw)
            except ValueError:
                raise UnknownModel(f"--dims: {key} must be an integer, got {raw!r}") from None
    missing = [k for k in REQUIRED_DIMS if k not in values]
    if missing:
        raise UnknownModel(f"--dims is missing {', '.join(missing)} (needs {', '.join(REQUIRED_DIMS)}; "
                         "kv_heads defaults to heads)")
    values.setdefault("kv_heads", values["heads"])
    try:
        return ModelDims(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UnknownModel(f"--dims: {exc}") from None


def dims_from_hf_config(config: dict) -> ModelDims:
    """Read a Hugging Face `config.json` (Llama, Qwen2 and other Llama-like decoders)."""
    text = config.get("text_config") or config
    try:
        heads = int(text["num_attention_heads"])
        return ModelDims(
            hidden=int(text["hidden_size"]),
            layers=int(text["num_hidden_layers"]),
            vocab=int(text["vocab_size"]),
            intermediate=int(text["intermediate_size"]),
            heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or 0),
            tied=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            qkv_bias=bool(text.get("attention_bias", text.get("model_type") == "qwen2")),
            max_position=int(text.get("max_position_embeddings") or 32768),
        )
    except KeyError as exc:
        raise UnknownModel(f"config.json lacks {exc.args[0]!r}; pass the shapes with --dims") from None
    except (TypeError, ValueError) as exc:  # `hidden_size: null`, `"abc"`, 0
        raise UnknownModel(f"config.json has a shape that is not a positive number ({exc}); pass the shapes "
                           "with --dims") from None


def resolve_dims(base_model: str | None, explicit: str | None = None, local_root: Path | None = None
                 ) -> tuple[ModelDims, str]:
    """The model's dimensions and where they came from; `UnknownModel` names `--dims`."""
    if explicit:
        return parse_dims(explicit), "--dims"
    if not base_model:
        raise UnknownModel("the config has no base_model; pass the shapes with --dims "
                           "hidden=...,layers=...,vocab=...,intermediate=...,heads=...,kv_heads=...")
    local = Path(base_model)
    if not local.is_absolute() and local_root is not None and not local.exists():
        local = local_root / local
    config_file = local / "config.json"
    if config_file.is_file():
        with open(config_file, encoding="utf-8") as handle:
            return dims_from_hf_config(json.load(handle)), str(config_file)
    if base_model in KNOWN_MODELS:
        return KNOWN_MODELS[base_model], "built-in table of public dimensions"
    raise UnknownModel(
        f"no offline dimensions for base_model {base_model!r}: it is not a local directory with "
        f"config.json and not in the built-in table ({', '.join(sorted(k for k in KNOWN_MODELS if k.endswith('-Instruct')))}). "
        "Pass the shapes explicitly: --dims hidden=...,layers=...,vocab=...,intermediate=...,"
        "heads=...,kv_heads=... (from the model's config.json)")

