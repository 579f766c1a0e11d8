"""Token counters: the tokenizer's own `tokenizers` backend, and tiktoken where it is exact.

tiktoken's BPE merges the adjacent pair whose concatenation has the lowest rank; the
Hugging Face BPE merges the listed pair with the lowest merge rank. They agree by
construction when the merges list holds *every* pair of vocabulary tokens whose
concatenation is a token, ordered by that token's id, each token's id above its parts',
all 256 bytes are tokens, whole-word lookup comes first (`ignore_merges`) and nothing
else (dropout, byte fallback, subword prefixes) is set: then both pick the same
token at every step (equal-rank ties can only be the same token at disjoint places, and
merging one cannot open a lower-rank pair). Llama 3's tokenizer is such a vocabulary;
Qwen2.5's lists one merge per token (142,779 of its 294,166 pairs are not merges), so it
gets the Hugging Face backend. The pre-tokenizer regex is passed to tiktoken unchanged,
and the finished encoder is also checked against the backend on sample text at start.
Text with an added token in it, or non-ASCII text under a normalizer other than NFC, is
always counted by the Hugging Face backend.
"""

from __future__ import annotations

import json
import re
import unicodedata

from .boundaries import pattern_of


class HFCounter:
    """Counts with the `tokenizers` backend (Rust, threads across cores for a batch)."""

    name = "tokenizers"

    def __init__(self, backend):
        self.backend = backend
        self._encode = getattr(backend, "encode_batch_fast", backend.encode_batch)

    def count(self, texts: list[str], special: bool = False) -> list[int]:
        if not texts:
            return []
        return [len(e) for e in self._encode(texts, add_special_tokens=special)]

    count_middles = count


class TiktokenCounter:
    """Counts text without added tokens with tiktoken; the rest with the fallback."""

    name = "tiktoken"

    def __init__(self, encoding, fallback: HFCounter, added: tuple[str, ...], nfc: bool):
        self.encoding = encoding
        self.fallback = fallback
        self.count = fallback.count
        self.added = re.compile("|".join(map(re.escape, added))) if added else None
        self.nfc = nfc

    def count_middles(self, texts: list[str]) -> list[int]:
        out = [0] * len(texts)
        fast, fast_at, slow, slow_at = [], [], [], []
        search = self.added.search if self.added else None
        for i, text in enumerate(texts):
            if search is not None and search(text):
                slow.append(text)
                slow_at.append(i)
                continue
            if not text.isascii():
                if self.nfc is None:
                    slow.append(text)
                    slow_at.append(i)
                    continue
                if self.nfc:
                    text = unicodedata.normalize("NFC", text)
            fast.append(text)
            fast_at.append(i)
        for i, n in zip(fast_at, map(len, self.encoding.encode_ordinary_batch(fast, num_threads=_threads()))):
            out[i] = n
        for i, n in zip(slow_at, self.fallback.count(slow)):
            out[i] = n
        return out


def _threads() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def tiktoken_construction(spec: dict) -> tuple[dict[bytes, int] | None, str]:
    """The mergeable ranks when the BPE converts exactly (module docstring), else (None, why)."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return None, f"model is {model.get('type')}, not BPE"
    if model.get("dropout") or model.get("byte_fallback") or model.get("continuing_subword_prefix") \
            or model.get("end_of_word_suffix") or model.get("unk_token"):
        return None, "dropout, byte fallback, unk or subword prefixes/suffixes are set"
    if not model.get("ignore_merges"):
        return None, "ignore_merges is off (whole words are not looked up first, as tiktoken does)"
    norm = spec.get("normalizer")
    if norm is not None and norm.get("type") != "NFC":
        return None, f"normalizer {norm.get('type')} (only none or NFC is reproduced)"
    if pattern_of(spec) is None:
        return None, "the pre-tokenizer has no known regex"
    added = {t["id"] for t in spec.get("added_tokens", [])}
    vocab: dict[str, int] = {t: i for t, i in model["vocab"].items() if i not in added}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    table = bytes_to_unicode()
    if any(ch not in vocab for ch in table):
        return None, "not all 256 byte tokens are in the vocabulary"
    last = -1
    for a, b in merges:
        merged = vocab.get(a + b)
        if merged is None or a not in vocab or b not in vocab:
            return None, f"merge {a!r} {b!r} is not made of vocabulary tokens"
        if merged < last:
            return None, "merges are not ordered by the ids of the tokens they make"
        if merged <= vocab[a] or merged <= vocab[b]:
            return None, f"token {a + b!r} ranks below its part {a!r} or {b!r} (equal-rank ties could resolve differently)"
        last = merged
    listed = set(merges)
    for token in vocab:
        for k in range(1, len(token)):
            if token[:k] in vocab and token[k:] in vocab and (token[:k], token[k:]) not in listed:
                return None, "the merges list omits pairs tiktoken would merge (one merge per token)"
    try:
        ranks = {bytes(table[c] for c in token): rank for token, rank in vocab.items()}
    except KeyError:
        return None, "a vocabulary token is not byte-level text"
    if len(ranks) != len(vocab):
        return None, "two vocabulary tokens have the same bytes"
    return ranks, "exact by construction"


SAMPLE = ["Hello world", "  two  spaces  ", "tabs\tand\nnewlines\r\n\n", "numbers 1234567 3.14159 1,000",
          "It's 'quoted' DON'T x's   \n\n  end ", "a\x0bb\x0cc\x1cd", "!!??..,,;; ## $$ %% ^^ && ** (( ))",
          "don't I'll WE'RE they've", "naïve café 数学 🙂 ẞ", "e\u0301 combining", "<|im_end|>x", "\u00a0nbsp\u2003em",
          "a" * 300, "x = {'k': [1, 2]} // comment", "ĠĠ Ġ byte-level look-alikes"]


def make_counter(light, added: tuple[str, ...], sample: list[str], cache_dir=None, want: str = "auto"):
    """The fastest exact counter for this tokenizer: tiktoken when it converts exactly by
    construction and agrees with the backend on `sample` + built-in probes, else HF."""
    backend, spec = light.backend, light.spec
    hf = HFCounter(backend)
    if want == "tokenizers":
        return hf, "tokenizers requested"
    words = WordCounter(backend, spec, added, hf) if ascii_pattern(spec) and _plain_normalizer(spec) else None
    probe = [t for t in list(sample) + SAMPLE if isinstance(t, str)]
    if words is not None and words.count_middles(probe) != hf.count(probe):
        words = None  # never seen; the construction says it cannot happen
    if want == "words" and words is not None:
        return words, "word cache requested"
    fallback = words or hf
    try:
        import tiktoken
    except ImportError:
        return fallback, "tiktoken is not installed (pip install tiktoken)"
    if (spec.get("model") or {}).get("type") != "BPE":
        return fallback, "not a BPE model"
    ranks, why = _cached_construction(light, cache_dir)
    if ranks is None:
        return fallback, f"not tiktoken: {why}"
    norm = spec.get("normalizer")
    encoding = tiktoken.Encoding(name="seqstats", pat_str=pattern_of(spec), mergeable_ranks=ranks, special_tokens={})
    counter = TiktokenCounter(encoding, hf, added, norm is not None)
    if counter.count_middles(probe) != hf.count(probe):
        return fallback, "tiktoken disagrees with the tokenizer on the start-up sample"
    return counter, "exact by construction and on the start-up sample"


def _plain_normalizer(spec: dict) -> bool:
    """None, or Unicode normalization, which leaves ASCII text unchanged."""
    from .boundaries import UNICODE_NORMALIZERS

    norm = spec.get("normalizer")
    kinds = [n.get("type") for n in (norm.get("normalizers", []) if norm and norm.get("type") == "Sequence" else [norm])
             if n is not None]
    return all(k in UNICODE_NORMALIZERS for k in kinds)


def _cached_construction(light, cache_dir) -> tuple[dict | None, str]:
    """The construction check takes a second or two on a 150k vocabulary; its verdict is cached."""
    if cache_dir is None:
        return tiktoken_construction(light.full_spec())
    verdict = cache_dir / f"tiktoken-{light.digest}.json"
    if verdict.is_file():
        try:
            cached = json.loads(verdict.read_text())
        except (OSError, ValueError):
            cached = None
        if cached and not cached["ok"]:
            return None, cached["why"]
        if cached and cached["ok"]:
            table = bytes_to_unicode()
            vocab = light.full_spec()["model"]["vocab"]
            return {bytes(table[c] for c in t): r for t, r in vocab.items()}, cached["why"]
    ranks, why = tiktoken_construction(light.full_spec())
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        verdict.write_text(json.dumps({"ok": ranks is not None, "why": why}))
    except OSError:
        pass
    return ranks, why


# --- printable-ASCII text: the pre-tokenizer's split in Python, each word's count cached -------------

# The known pre-tokenizer patterns with their character classes restricted to printable ASCII plus
# \t \n \r: on that alphabet \p{L} is [A-Za-z], \p{N} is [0-9] and \s is [\t\n\r ], so these split
# such text exactly as the originals (same backtracking, leftmost-first semantics as onig).
_L, _N, _S = "A-Za-z", "0-9", "\\t\\n\\r "
ASCII_PATTERNS = {
    "newline-1": (f"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n{_L}{_N}]?[{_L}]+|[{_N}]| ?[^{_S}{_L}{_N}]+[\\r\\n]*"
                  f"|[{_S}]*[\\r\\n]+|[{_S}]+(?![^{_S}])|[{_S}]+"),
    "newline-3": (f"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n{_L}{_N}]?[{_L}]+|[{_N}]{{1,3}}| ?[^{_S}{_L}{_N}]+[\\r\\n]*"
                  f"|[{_S}]*[\\r\\n]+|[{_S}]+(?![^{_S}])|[{_S}]+"),
    "gpt2": f"'s|'t|'re|'ve|'m|'ll|'d| ?[{_L}]+| ?[{_N}]+| ?[^{_S}{_L}{_N}]+|[{_S}]+(?![^{_S}])|[{_S}]+",
}
NOT_PLAIN = re.compile(r"[^\t\n\r\x20-\x7e]")


def ascii_pattern(spec: dict) -> str | None:
    """The ASCII form of the tokenizer's split pattern, when it is one of the known ones."""
    from .boundaries import GPT2_PATTERN, NEWLINE_PATTERNS

    pattern = pattern_of(spec)
    if pattern == GPT2_PATTERN:
        return ASCII_PATTERNS["gpt2"]
    if pattern in NEWLINE_PATTERNS:
        return ASCII_PATTERNS["newline-3" if "{1,3}" in pattern else "newline-1"]
    return None


class WordCounter:
    """Counts printable-ASCII text without added tokens as the `tokenizers` pipeline does: the
    normalizer (NFC/NFKC) leaves such text as it is, the split is the pattern above, each piece
    is byte-mapped (GPT-2 table) and given to the tokenizer's own model, whose count per piece is
    cached. Other text goes to the backend whole."""

    name = "tokenizers+word-cache"

    def __init__(self, backend, spec: dict, added: tuple[str, ...], fallback: HFCounter):
        self.model = backend.model
        self.count = fallback.count
        self.fallback = fallback
        self.split = re.compile(ascii_pattern(spec)).findall
        self.added = re.compile("|".join(map(re.escape, added))).search if added else None
        table = {b: c for c, b in bytes_to_unicode().items()}
        self.byte_map = {i: table[i] for i in range(128)}
        self.cache: dict[str, int] = {}

    def _word(self, piece: str) -> int:
        n = len(self.model.tokenize(piece.translate(self.byte_map)))
        if len(self.cache) < 1_000_000:
            self.cache[piece] = n
        return n

    def count_middles(self, texts: list[str]) -> list[int]:
        out = [0] * len(texts)
        slow, slow_at = [], []
        split, cache, word, added, plain = self.split, self.cache, self._word, self.added, NOT_PLAIN.search
        for i, text in enumerate(texts):
            if plain(text) or (added is not None and added(text)):
                slow.append(text)
                slow_at.append(i)
                continue
            pieces = split(text)
            total = 0
            size = 0
            for piece in pieces:
                n = cache.get(piece)
                total += word(piece) if n is None else n
                size += len(piece)
            if size != len(text):  # the pattern left a gap: let the backend split it
                slow.append(text)
                slow_at.append(i)
                continue
            out[i] = total
        for i, n in zip(slow_at, self.fallback.count(slow)):
            out[i] = n
        return out
