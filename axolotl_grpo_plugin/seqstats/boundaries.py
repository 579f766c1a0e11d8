"""When is `tokens(A + B) == tokens(A) + tokens(B)`? Per row, cheap, and conservative.

A Hugging Face tokenizer splits out added (special) tokens first, then normalizes,
pre-tokenizes each remaining segment into pieces, and runs the model (BPE, ...) on each
piece alone. So a boundary is clean when (1) no added token occurs across it, (2) the
normalizer cannot join the two sides (none, or NFC/NFKC/NFD/NFKD with an ASCII character
right after the boundary: no canonical composition or reordering has an ASCII second
element), and (3) the pre-tokenizer puts a piece boundary there *and* the left side alone
is cut the same way. (3) holds outright when an added token starts B (or is the selected
match ending A). Otherwise it is proven only for two pre-tokenizer families:

- `newline`: Split on the GPT-4-style pattern Qwen2/2.5 and Llama 3 use, then
  ByteLevel(use_regex=false). If A ends in \\r or \\n and B starts with a non-space, no
  alternative of the pattern matches across (the only ones that contain \\n either end
  there, `[\\r\\n]*` at the end of ` ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*`, or are all whitespace),
  and the whitespace run ending A is matched whole by `\\s*[\\r\\n]+` with or without B.
- `gpt2`: ByteLevel(use_regex=true). Same, but `\\s+(?!\\S)` keeps a run of two or more
  spaces apart from the next word, so A must end in one \\r/\\n after a non-space.

Any other tokenizer (SentencePiece/Unigram with Metaspace, added tokens with lstrip or
rstrip, other normalizers) gets no clean boundaries: every row is encoded whole.
"""

from __future__ import annotations

from dataclasses import dataclass


NEWLINE_PATTERNS = {
    # Qwen2 / Qwen2.5
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    # Llama 3 (cl100k)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
UNICODE_NORMALIZERS = {"NFC", "NFKC", "NFD", "NFKD"}
NEWLINES = ("\r", "\n")


@dataclass(frozen=True)
class Left:
    """The fixed text left of a varying part."""

    hard: bool  # ends with an added token (a segment boundary whatever follows)
    soft: bool  # the family's condition on the left side holds
    crossing: tuple[str, ...]  # a varying part starting with one of these would complete an added token


@dataclass(frozen=True)
class Right:
    """The fixed text right of a varying part."""

    hard: bool  # starts with an added token
    soft: bool  # starts with a non-space
    ascii: bool
    crossing: tuple[str, ...]  # a varying part ending with one of these would start an added token


class Boundaries:
    """What a tokenizer (its `tokenizer.json` as a dict) allows; `why_not` says why nothing is."""

    def __init__(self, spec: dict, added_ids: dict[str, int]):
        self.added = tuple(sorted(added_ids, key=len, reverse=True))
        self.max_added = max((len(t) for t in self.added), default=0)
        self.normalizes = spec.get("normalizer") is not None
        self.family, self.why_not = _family(spec)
        self.normalized_added = any(t.get("normalized") for t in spec.get("added_tokens", []))

    @property
    def usable(self) -> bool:
        return self.family is not None

    def left(self, text: str, last_token_is_added: bool) -> Left:
        hard = last_token_is_added
        soft = text.endswith(NEWLINES) and (self.family != "gpt2" or (len(text) >= 2 and not text[-2].isspace()))
        crossing = {t[k:] for t in self.added for k in range(1, len(t)) if text.endswith(t[:k])}
        return Left(hard, soft, tuple(sorted(crossing)))

    def right(self, text: str) -> Right:
        crossing = {t[:k] for t in self.added for k in range(1, len(t)) if text.startswith(t[k:])}
        return Right(text.startswith(self.added) if self.added else False, not text[:1].isspace(),
                     text[:1].isascii(), tuple(sorted(crossing)))

    def clean(self, middle: str, left: Left | None, right: Right | None) -> bool:
        """Whether `left + middle + right` tokenizes as the three parts alone (see the module docstring)."""
        if not middle or len(middle) < self.max_added:
            return False  # an added token could span the whole middle
        if self.normalizes:
            if not middle[0].isascii() or (right is not None and not right.ascii):
                return False
            if self.normalized_added and not middle.isascii():
                return False
        if left is not None:
            if left.crossing and middle.startswith(left.crossing):
                return False
            if not (left.hard or (self.added and middle.startswith(self.added))
                    or (left.soft and not middle[0].isspace())):
                return False
        if right is not None:
            if right.crossing and middle.endswith(right.crossing):
                return False
            if not (right.hard or (right.soft and self._ends_clean(middle))):
                return False
        return True

    def _ends_clean(self, middle: str) -> bool:
        if self.family == "gpt2":
            return middle.endswith(NEWLINES) and len(middle) >= 2 and not middle[-2].isspace()
        return middle.endswith(NEWLINES)

    def cut_prefix(self, before: str, common: str) -> int:
        """How much of the contents' common prefix can join the fixed text before them."""
        for k in range(len(common), 0, -1):
            if (common[k - 1] in NEWLINES and (k == len(common) or not common[k].isspace())
                    and self.left(before + common[:k], False).soft):
                return k
        return 0

    def cut_suffix(self, common: str) -> int:
        """Where the fixed text after the contents can start within their common suffix (len: none)."""
        for j in range(len(common)):
            rest = common[j:]
            if self.added and rest.startswith(self.added):
                return j
            if (j >= 1 and common[j - 1] in NEWLINES and not rest[0].isspace()
                    and (self.family != "gpt2" or (j >= 2 and not common[j - 2].isspace()))):
                return j
        return len(common)


def _family(spec: dict) -> tuple[str | None, str | None]:
    bad = [t["content"] for t in spec.get("added_tokens", []) if t.get("lstrip") or t.get("rstrip") or t.get("single_word")]
    if bad:
        return None, f"added token {bad[0]!r} strips or matches whole words"
    norm = spec.get("normalizer")
    kinds = [n.get("type") for n in (norm.get("normalizers", []) if norm and norm.get("type") == "Sequence" else [norm])
             if n is not None]
    if any(k not in UNICODE_NORMALIZERS for k in kinds):
        return None, f"normalizer {kinds} may join text across a boundary"
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space"):
        return "gpt2", None
    subs = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if (len(subs) == 2 and subs[0].get("type") == "Split" and subs[0].get("behavior") == "Isolated"
            and not subs[0].get("invert") and (subs[0].get("pattern") or {}).get("Regex") in NEWLINE_PATTERNS
            and subs[1].get("type") == "ByteLevel" and not subs[1].get("use_regex", True)
            and not subs[1].get("add_prefix_space")):
        return "newline", None
    return None, f"pre-tokenizer {pre.get('type')!r} is not one whose boundaries are proven here"


def pattern_of(spec: dict) -> str | None:
    """The pre-tokenizer's regex (for a tiktoken encoder), when its family is known."""
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel":
        return GPT2_PATTERN
    subs = pre.get("pretokenizers", [])
    return (subs[0].get("pattern") or {}).get("Regex") if subs else None
