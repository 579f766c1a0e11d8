"""The tokenizer and chat template without transformers, torch or Axolotl on the start-up path.

The first run for a tokenizer directory + config loads them the usual way
(`sources.load_tokenizer`, `sources.apply_chat_template_choice`: transformers and
Axolotl's template resolver) and saves what counting needs: the `tokenizers` backend
exactly as transformers built it (`backend_tokenizer.to_str()`, added and config tokens
included), the chat template Axolotl chose, and the special tokens the template sees.
It is saved only if rendering and counting with it gives the same lengths as
transformers' `apply_chat_template(..., tokenize=True)` and `tokenizer(text)` on probe
prompts. Later runs load that file with `tokenizers` alone (~0.1 s instead of seconds
of imports). The key covers the tokenizer files' contents, every config key that
changes the tokenizer or template, and the transformers/tokenizers/axolotl versions.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


FORMAT = 1
CONFIG_KEYS = ("tokenizer_type", "tokenizer_use_fast", "tokenizer_legacy", "revision_of_model", "trust_remote_code",
               "special_tokens", "tokens", "chat_template", "chat_template_jinja", "default_system_message")
PROBES = ["Natalia sold clips to 48 of her friends in April.", "  leading spaces\n\nand newlines\n",
          "special look-alike <|im_end|> <|eot_id|> </s> <s> [INST]", "unicode: naïve café 数学 🙂 e\u0301",
          "trailing spaces   ", "x"]


@dataclass
class LightTokenizer:
    backend: Any  # tokenizers.Tokenizer
    chat_template: str | None
    variables: dict[str, Any]  # special tokens as the template sees them
    template_name: str
    spec: dict  # the backend's JSON without the vocabulary (normalizer, pre_tokenizer, added_tokens, model options)
    digest: str
    hf: Any = None  # the transformers tokenizer, when one was loaded this run

    def full_spec(self) -> dict:
        """The backend's whole JSON, vocabulary and merges included (parsed on demand: ~0.5 s)."""
        return json.loads(self.backend.to_str())

    @property
    def added_ids(self) -> dict[str, int]:
        return {t["content"]: t["id"] for t in self.spec.get("added_tokens", [])}


def cache_dir() -> Path:
    root = os.environ.get("AXOLOTL_GRPO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "axolotl_grpo_plugin")
    return Path(root) / "seqstats"


def from_hf(tokenizer, template_name: str) -> LightTokenizer:
    """What counting needs from a loaded transformers tokenizer (chat template already applied)."""
    from tokenizers import Tokenizer

    text = tokenizer.backend_tokenizer.to_str()
    return LightTokenizer(Tokenizer.from_str(text), tokenizer.chat_template, _variables(tokenizer), template_name,
                          small_spec(json.loads(text)), hashlib.sha256(text.encode()).hexdigest()[:24], tokenizer)


def small_spec(spec: dict) -> dict:
    model = {k: v for k, v in (spec.get("model") or {}).items() if k not in ("vocab", "merges")}
    return {"normalizer": spec.get("normalizer"), "pre_tokenizer": spec.get("pre_tokenizer"),
            "added_tokens": spec.get("added_tokens", []), "model": model}


def _variables(tokenizer) -> dict[str, Any]:
    return json.loads(json.dumps(dict(tokenizer.special_tokens_map), default=str))


def key_for(cfg: dict[str, Any], source: str) -> str | None:
    """The cache key of a local tokenizer directory under this config, or None (not local)."""
    from importlib.metadata import PackageNotFoundError, version

    directory = Path(source)
    if not directory.is_dir():
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.suffix in (".json", ".txt", ".jinja", ".model", ".tiktoken") or path.name.startswith("tokenizer"):
            h.update(path.name.encode() + b"\0")
            h.update(path.read_bytes())
    relevant = {k: cfg.get(k) for k in CONFIG_KEYS}
    jinja = cfg.get("chat_template_jinja")
    if isinstance(jinja, str) and len(jinja) < 4096 and Path(jinja).is_file():
        relevant["chat_template_jinja_text"] = Path(jinja).read_text(encoding="utf-8")
    versions = []
    for package in ("transformers", "tokenizers", "axolotl", "jinja2"):
        try:
            versions.append(version(package))
        except PackageNotFoundError:
            versions.append(None)
    h.update(json.dumps([FORMAT, str(directory.resolve()), relevant, versions], sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def load_cached(key: str) -> LightTokenizer | None:
    path = cache_dir() / f"tokenizer-{key}.json"
    if not path.is_file():
        return None
    try:
        from tokenizers import Tokenizer

        saved = json.loads(path.read_text(encoding="utf-8"))
        return LightTokenizer(Tokenizer.from_str(saved["backend"]), saved["chat_template"], saved["variables"],
                              saved["template_name"], saved["spec"], saved["digest"])
    except Exception:  # noqa: BLE001 - a damaged or foreign file: rebuild it
        return None


def save(key: str, light: LightTokenizer) -> None:
    """Only when the light tokenizer reproduces transformers' counts on the probes."""
    if light.hf is None or agrees_with_transformers(light) is not None:
        return
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".tokenizer-{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"backend": light.backend.to_str(), "chat_template": light.chat_template,
                                   "variables": light.variables, "template_name": light.template_name,
                                   "spec": light.spec, "digest": light.digest}), encoding="utf-8")
        os.replace(tmp, directory / f"tokenizer-{key}.json")
    except OSError:
        pass  # no cache: the next run loads transformers again


def agrees_with_transformers(light: LightTokenizer) -> str | None:
    """Why the light tokenizer counts differently from transformers on the probes (None: it does not)."""
    from .template import compile_template, render

    tok = light.hf
    for text in PROBES:
        if len(tok(text)["input_ids"]) != len(light.backend.encode(text, add_special_tokens=True)):
            return f"plain text {text!r}"
        if light.chat_template is None:
            continue
        messages = [{"role": "user", "content": text}]
        try:
            want = len(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"])
        except Exception:  # noqa: BLE001, S112 - a probe transformers refuses proves nothing either way
            continue
        got = render(compile_template(light.chat_template), messages, light.variables)
        if len(light.backend.encode(got, add_special_tokens=False)) != want:
            return f"chat prompt {text!r}"
    return None
