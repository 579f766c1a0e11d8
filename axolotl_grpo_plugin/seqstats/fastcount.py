r"""Exact prompt-token counts, most of them without encoding: a per-word count cache.

A Hugging Face tokenizer cuts the text at added tokens (one token each), then models each
piece of each segment alone, so a prompt's count is the added tokens plus its pieces' counts,
and GSM8K prompts repeat most pieces. Exact for printable-ASCII text (plus \t \n \r) with a
byte-level BPE of a known split pattern and no normalizer but Unicode normalization: there the
pattern with `\p{L}` = `[A-Za-z]`, `\p{N}` = `[0-9]`, `\s` = `[\t\n\r ]` cuts the same pieces.
Every other prompt or tokenizer is encoded whole by `tokenizers` (docs/stats.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .counting import split_prompts, template_failed
from .light import LightTokenizer, compile_template, render


CHECK_ROWS = 32  # rows counted both ways at start
NEWLINE_PATTERNS = {  # the Split pre-tokenizer's regex -> its \p{N} repetition
    # Qwen2 / Qwen2.5
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "",
    # Llama 3 (cl100k)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "{1,3}",
}
_L, _N, _S = "A-Za-z", "0-9", "\\t\\n\\r "
GPT2_ASCII = f"'s|'t|'re|'ve|'m|'ll|'d| ?[{_L}]+| ?[{_N}]+| ?[^{_S}{_L}{_N}]+|[{_S}]+(?![^{_S}])|[{_S}]+"
NOT_PLAIN = re.compile(r"[^\t\n\r\x20-\x7e]")
PROBES = ["Hello world", "  two  spaces  ", "tabs\tand\nnewlines\r\n\n", "numbers 1234567 3.14159 1,000",
          "It's 'quoted' DON'T x's   \n\n  end ", "!!??..,,;; ## $$ %% ^^ && ** (( ))", "don't I'll WE'RE they've",
          "a" * 300, "x = {'k': [1, 2]} // comment", "naïve café 数学 🙂", "<|im_end|>x\n\n<|im_start|>"]


def ascii_pattern(spec: dict) -> tuple[str | None, str]:
    """The printable-ASCII form of a byte-level BPE's split pattern, or (None, why not)."""
    if (spec.get("model") or {}).get("type") != "BPE" or (spec.get("model") or {}).get("dropout"):
        return None, "not a BPE model without dropout"
    norm = spec.get("normalizer")
    kinds = [n.get("type") for n in (norm.get("normalizers", []) if norm and norm.get("type") == "Sequence" else [norm])
             if n is not None]
    if any(k not in ("NFC", "NFKC", "NFD", "NFKD") for k in kinds):
        return None, f"normalizer {kinds} may change ASCII text"
    if any(t.get(k) for t in spec.get("added_tokens", []) for k in ("lstrip", "rstrip", "single_word", "normalized")):
        return None, "an added token strips, matches whole words or is matched after normalization"
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space"):
        return GPT2_ASCII, ""
    subs = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    regex = (subs[0].get("pattern") or {}).get("Regex") if len(subs) == 2 else None
    if (regex in NEWLINE_PATTERNS and subs[0].get("type") == "Split" and subs[0].get("behavior") == "Isolated"
            and not subs[0].get("invert") and subs[1].get("type") == "ByteLevel"
            and not subs[1].get("use_regex", True) and not subs[1].get("add_prefix_space")):
        return (f"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n{_L}{_N}]?[{_L}]+|[{_N}]{NEWLINE_PATTERNS[regex]}"
                f"| ?[^{_S}{_L}{_N}]+[\\r\\n]*|[{_S}]*[\\r\\n]+|[{_S}]+(?![^{_S}])|[{_S}]+"), ""
    return None, f"pre-tokenizer {pre.get('type')!r} is not a known byte-level split"


def byte_level_table() -> dict[int, str]:
    """GPT-2's byte -> printable character table, for the 128 ASCII bytes."""
    printable = [*range(ord("!"), ord("~") + 1)]
    others = [b for b in range(128) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + k) for k, b in enumerate(others)}}


class WordCounter:
    """The per-word count cache (module docstring); `count` returns the rows it could not count."""

    name = "tokenizers+word-cache"

    def __init__(self, light: LightTokenizer, pattern: str):
        self.model = light.backend.model
        added = sorted((t["content"] for t in light.spec.get("added_tokens", [])), key=len, reverse=True)
        self.cut = re.compile("|".join(map(re.escape, added))).split if added else (lambda text: [text])
        self.split = re.compile(pattern).findall
        self.byte_map = byte_level_table()
        self.cache: dict[str, int] = {}

    def count(self, texts: list[str]) -> tuple[list[int], list[int]]:
        out, rest = [0] * len(texts), []
        cache, split, plain = self.cache, self.split, NOT_PLAIN.search
        for i, text in enumerate(texts):
            if plain(text):
                rest.append(i)
                continue
            segments = self.cut(text)
            total, gap = len(segments) - 1, 0
            for segment in segments:
                gap += len(segment)
                for piece in split(segment):
                    n = cache.get(piece)
                    if n is None:
                        n = len(self.model.tokenize(piece.translate(self.byte_map)))
                        if len(cache) < 1_000_000:
                            cache[piece] = n
                    total += n
                    gap -= len(piece)
            if gap:  # the pattern skipped a character: let the backend count the row
                rest.append(i)
            out[i] = total
        return out, rest


@dataclass
class Tally:
    """How the rows were counted (`counting` in --json, asserted in tests)."""

    split: int = 0  # counted word by word
    whole: int = 0  # encoded whole by `tokenizers` (plain-text prompts too)
    notes: set = field(default_factory=set)


class Counter:
    """Counts a batch of prompts as TRL does (chat: template + generation prompt, no special
    tokens added; plain text: the tokenizer's defaults)."""

    def __init__(self, light: LightTokenizer, method: str = "fast", tools: list[dict] | None = None):
        self.light, self.tally, self.checked, self.tools = light, Tally(), 0, tools
        self.template = compile_template(light.chat_template) if light.chat_template else None
        pattern, why = ascii_pattern(light.spec) if method == "fast" else (None, "whole prompts")
        self.words = WordCounter(light, pattern) if pattern else None
        if self.words and self._chat_counts(PROBES)[0] != self._encode(PROBES):
            self.words, why = None, "the word cache disagreed with the tokenizer on the probes"
        self.name = self.words.name if self.words else "tokenizers"
        self.why = why or "byte-level BPE with a known split pattern"
        if why and method == "fast":
            self.tally.notes.add(f"no word cache: {why}")

    def _encode(self, texts: list[str], special: bool = False) -> list[int]:
        return [len(e) for e in self.light.backend.encode_batch_fast(texts, add_special_tokens=special)] if texts else []

    def _chat_counts(self, texts: list[str]) -> tuple[list[int], list[int]]:
        """Counts of rendered prompts, and which of them `tokenizers` encoded whole."""
        counts, whole = self.words.count(texts) if self.words else ([0] * len(texts), list(range(len(texts))))
        for k, n in zip(whole, self._encode([texts[k] for k in whole])):
            counts[k] = n
        return counts, whole

    def render(self, prompt: list[dict], where: str) -> str:
        try:
            if self.template is None:
                raise ValueError("the tokenizer has no chat template")
            return render(self.template, prompt, self.light.variables, self.tools)
        except Exception as exc:  # noqa: BLE001 - any template failure becomes the one-line error
            raise template_failed(where, exc) from None

    def count(self, prompts: list[Any], where=lambda i: f"row {i}") -> list[int]:
        chat_at, plain_at = split_prompts(prompts, where)
        chat = [self.render(prompts[i], where(i)) for i in chat_at]
        counts, whole = self._chat_counts(chat)
        if self.words and self.checked < CHECK_ROWS:  # start-up check: whole encoding of the first rows
            first = [k for k in range(min(len(chat), CHECK_ROWS - self.checked)) if k not in set(whole)]
            self.checked += len(first)
            if [counts[k] for k in first] != self._encode([chat[k] for k in first]):
                self.words = None
                self.tally.notes.add(f"the word cache disagreed with the tokenizer on {where(chat_at[0])}; turned off")
                return self.count(prompts, where)
        lengths = [0] * len(prompts)
        for i, n in [*zip(chat_at, counts), *zip(plain_at, self._encode([prompts[i] for i in plain_at], True))]:
            lengths[i] = n
        self.tally.split += len(chat) - len(whole)
        self.tally.whole += len(whole) + len(plain_at)
        return lengths
