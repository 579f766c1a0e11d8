"""Is a local `base_model` a model Axolotl can train, with a tokenizer whose end-of-sequence
token ends the model's turns? Read from the folder's json files, without loading anything.

A GGUF-converted tokenizer (transformers' `gguf_file=`) comes out with eos = bos and no pad:
generation then never stops on eos, and Axolotl/transformers silently re-align eos and pad.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import Problem


FETCH_FIX = "`axolotl-grpo fetch-model smollm2-135m --output-dir DIR` writes SmolLM2 as a ready folder"
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json")


def model_path_problems(key: str, value: Any) -> list[Problem]:
    """A local `base_model` that is a GGUF file, another file, or a folder with no config.json."""
    if not isinstance(value, str) or not Path(value).exists():
        return []  # a Hub id, or a missing path (checks.check_paths)
    path = Path(value)
    ggufs = [path] if path.suffix == ".gguf" else sorted(path.glob("*.gguf")) if path.is_dir() else []
    convert = (f"convert it to a Hugging Face folder (transformers: `AutoModelForCausalLM.from_pretrained(folder, "
               f"gguf_file=...)` then `save_pretrained(DIR)`, the same for the tokenizer) and set {key} to DIR; "
               f"for SmolLM2, {FETCH_FIX}")
    if path.is_file():
        what = ("a GGUF file: Axolotl loads a Hugging Face model folder (config.json and safetensors), not GGUF"
                if ggufs else "a file, not a model folder")
        return [Problem(key, value, what + ".", convert if ggufs else f"set {key} to the folder holding config.json")]
    if not (path / "config.json").is_file():
        what = "this folder has no config.json, so it is not a Hugging Face model folder"
        if ggufs:
            return [Problem(key, value, f"{what}; it holds {ggufs[0].name} (GGUF), which Axolotl does not load.",
                            convert)]
        return [Problem(key, value, what + ".",
                        f"set {key} to the folder `save_pretrained` wrote (config.json, weights, tokenizer), "
                        "or to a Hub model id")]
    return []


def special_tokens(folder: Path) -> dict[str, str | None] | None:
    """eos/bos as the folder's tokenizer files set them (special_tokens_map.json over
    tokenizer_config.json, as transformers reads them); None when it has neither file."""
    found: dict[str, str | None] = {}
    seen = False
    for name in TOKENIZER_FILES:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        seen = True
        for token in ("eos_token", "bos_token"):
            if token in data:
                value = data[token]
                found[token] = value.get("content") if isinstance(value, dict) else value
    return found if seen else None


def end_of_turn_problems(run: Any) -> list[Problem]:
    """The tokenizer's eos is missing or equal to bos (after the config's `special_tokens:`)."""
    key = "tokenizer_config" if run.tokenizer_config else "base_model"
    source = getattr(run, key)
    if not isinstance(source, str) or not Path(source).is_dir():
        return []
    tokens = special_tokens(Path(source))
    if tokens is None:
        return []  # no tokenizer files here: loading it says so
    override = run.special_tokens if hasattr(run.special_tokens, "get") else {}
    eos = override.get("eos_token") or tokens.get("eos_token")
    bos = override.get("bos_token") or tokens.get("bos_token")
    if eos and eos != bos:
        return []
    what = ("its tokenizer has no end-of-sequence token" if not eos else
            f"its tokenizer's end-of-sequence token {eos!r} is also its beginning-of-sequence token (typical of a "
            "GGUF conversion)")
    return [Problem(key, source, what + ": generation never stops at the end of a turn, and Axolotl/transformers "
                    "silently re-align eos and pad.",
                    f"{FETCH_FIX}; or set `special_tokens: {{eos_token: ...}}` to the token that ends the model's "
                    "turns (`<|im_end|>` for a ChatML model)")]
