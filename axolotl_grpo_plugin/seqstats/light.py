"""The tokenizer and chat template without transformers, torch or Axolotl on the start-up path.

The first run for a tokenizer directory + config loads them the usual way and caches the
`tokenizers` backend, the chosen template and the special tokens, if rendering and counting
with them gives transformers' lengths on probe prompts; later runs need only `tokenizers` and
jinja2. Templates are rendered in transformers 5's jinja environment rebuilt here: importing
transformers costs ~1.6 s of CPU, more than counting GSM8K.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from ..system import paths


FORMAT = 2
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


def from_hf(tokenizer, template_name: str) -> LightTokenizer:
    """What counting needs from a loaded transformers tokenizer (chat template already applied)."""
    from tokenizers import Tokenizer

    text = tokenizer.backend_tokenizer.to_str()
    spec = json.loads(text)
    spec = {**{k: spec.get(k) for k in ("normalizer", "pre_tokenizer", "added_tokens")},
            "model": {k: v for k, v in (spec.get("model") or {}).items() if k not in ("vocab", "merges")}}
    variables = json.loads(json.dumps(dict(tokenizer.special_tokens_map), default=str))
    return LightTokenizer(Tokenizer.from_str(text), tokenizer.chat_template, variables, template_name, spec)


def key_for(run: Any, source: str) -> str | None:
    """The cache key of a local tokenizer directory under this config (its Run), or None (not local)."""
    from ..config.defaults import installed_version

    directory = Path(source)
    if not directory.is_dir():
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.suffix in (".json", ".txt", ".jinja", ".model", ".tiktoken") or path.name.startswith("tokenizer"):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    relevant = {k: getattr(run, k) for k in CONFIG_KEYS}
    jinja = run.chat_template_jinja
    if isinstance(jinja, str) and len(jinja) < 4096 and Path(jinja).is_file():
        relevant["chat_template_jinja_text"] = Path(jinja).read_text(encoding="utf-8")
    relevant.update({p: installed_version(p) for p in ("transformers", "tokenizers", "axolotl", "jinja2")})
    h.update(json.dumps([FORMAT, str(directory.resolve()), relevant], sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def load_cached(key: str) -> LightTokenizer | None:
    try:
        from tokenizers import Tokenizer

        saved = json.loads((paths.cache_dir() / "seqstats" / f"tokenizer-{key}.json").read_text(encoding="utf-8"))
        return LightTokenizer(Tokenizer.from_str(saved.pop("backend")), **saved)
    except Exception:  # noqa: BLE001 - missing, damaged or foreign: rebuild it
        return None


def save(key: str, light: LightTokenizer, tok) -> None:
    """Only when the light tokenizer reproduces transformers' (`tok`) counts on the probes."""
    from ..system.safe_files import replacing

    if not agrees_with_transformers(light, tok):
        return
    saved = {k: getattr(light, k) for k in ("chat_template", "variables", "template_name", "spec")}
    try:
        (paths.cache_dir() / "seqstats").mkdir(parents=True, exist_ok=True)
        with replacing(paths.cache_dir() / "seqstats" / f"tokenizer-{key}.json") as handle:
            json.dump({"backend": light.backend.to_str(), **saved}, handle)
    except OSError:
        pass  # no cache: the next run loads transformers again


def agrees_with_transformers(light: LightTokenizer, tok) -> bool:
    """Plain and chat probe prompts count the same with the light tokenizer and transformers."""
    for text in PROBES:
        if len(tok(text)["input_ids"]) != len(light.backend.encode(text, add_special_tokens=True)):
            return False
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
            return False
    return True


@lru_cache(maxsize=8)
def compile_template(source: str):
    """transformers 5's jinja environment for chat templates (same sandbox, options, helpers)."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        """`{% generation %}...{% endgeneration %}` renders its body (transformers only tracks indices)."""

        tags: ClassVar[set[str]] = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def render(template, messages: list[dict], variables: dict[str, Any], tools: list[dict] | None = None,
           add_generation_prompt: bool = True) -> str:
    """One conversation with the generation prompt, as TRL asks for it (with the run's tools' schemas)."""
    return template.render(messages=messages, tools=tools or None, documents=None,
                           add_generation_prompt=add_generation_prompt, **variables)
