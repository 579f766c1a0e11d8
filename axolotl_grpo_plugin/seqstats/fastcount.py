"""Exact prompt-token counts without rendering and tokenizing the constant text on every row.

For each prompt shape (roles and fields except the contents) the chat template is
rendered once around traced contents (`template.trace`), giving fixed text around
each content. The common prefix and suffix of the contents (the instruction every
row repeats) join the fixed text where a boundary can be proven clean. The fixed
text is counted once; per row only the varying middle is tokenized, in one batch
call, and the row's count is `fixed + sum(middles)`. A row gets that count only if
its contents answer the template's questions as the traced row did
(`Plan.holds`), start and end with the shape's common prefix and suffix, and every
boundary is clean (`boundaries.Boundaries.clean`); any other row is rendered and
encoded whole. With `method="full"` every row is (the reference the tests compare
with). A start-up check compares the split count with the whole count on each new
shape's first rows and turns the split off for a shape where they differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .backends import HFCounter, make_counter
from .boundaries import Boundaries, Left, Right
from .counting import is_conversational
from .light import LightTokenizer
from .sources import StatsError
from .template import Plan, compile_template, render, trace, verify


MAX_SHAPES = 64
CHECK_ROWS = 32  # rows of each new shape counted both ways at start


def shape_key(prompt: list) -> tuple | None:
    """Everything about a chat prompt except its message contents (None: not hashable / not text)."""
    try:
        key = []
        for m in prompt:
            if not isinstance(m.get("content"), str):
                return None
            key.append(tuple((k, v) for k, v in m.items() if k != "content"))
        key = tuple(key)
        hash(key)
        return key
    except (AttributeError, TypeError):
        return None


@dataclass
class Shape:
    plan: Plan | None
    note: str = ""
    split: bool = False
    fixed_tokens: int = 0
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    lefts: list[Left | None] = field(default_factory=list)
    rights: list[Right | None] = field(default_factory=list)
    const: dict[int, str] = field(default_factory=dict)  # refs equal on every sampled row: part of the fixed text
    varying: list[int] = field(default_factory=list)  # the other refs, in output order
    checked: int = 0


@dataclass
class Tally:
    """How the rows were counted (shown with --verbose, asserted in tests)."""

    split: int = 0
    whole: int = 0
    plain: int = 0
    notes: set = field(default_factory=set)


class Counter:
    """Counts a batch of prompts as TRL does (chat: template + generation prompt, no special
    tokens added; plain text: the tokenizer's defaults)."""

    def __init__(self, light: LightTokenizer, method: str = "fast", backend: str = "auto",
                 sample: list[str] | None = None, cache=None):
        if method not in ("fast", "full"):
            raise ValueError(f"method {method!r}")
        self.light = light
        self.method = method
        self.hf = HFCounter(light.backend)
        self.template = compile_template(light.chat_template) if light.chat_template else None
        self.bounds = Boundaries(light.spec, light.added_ids)
        self.shapes: dict[tuple, Shape] = {}
        self.tally = Tally()
        self.middles, self.backend_note = (self.hf, "whole prompts") if method == "full" else make_counter(
            light, self.bounds.added, sample or [], cache, backend)
        if method == "fast" and not self.bounds.usable:
            self.tally.notes.add(f"no split: {self.bounds.why_not}")

    # --- whole prompts -----------------------------------------------------------------------------

    def render(self, prompt: list[dict], where: str) -> str:
        if self.template is None:
            raise StatsError(f"{where}: the chat template failed (ValueError: the tokenizer has no chat template). "
                             "Fix: set `chat_template:` (e.g. chatml, qwen_25, llama3) or --chat-template.")
        try:
            return render(self.template, prompt, self.light.variables)
        except Exception as exc:  # noqa: BLE001 - any template failure becomes the one-line error
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise StatsError(f"{where}: the chat template failed ({type(exc).__name__}: {text}). "
                             "Fix: set `chat_template:` (e.g. chatml, qwen_25, llama3) or --chat-template.") from None

    # --- shapes ---------------------------------------------------------------------------------------

    def _shape(self, key: tuple, rows: list[list[dict]], where: str) -> Shape:
        if len(self.shapes) >= MAX_SHAPES or self.template is None:
            return Shape(None, "too many prompt shapes" if self.template else "no chat template")
        first = rows[0]
        plan = trace(self.template, first, self.light.variables)
        problem = verify(self.template, first, self.light.variables, plan)
        if problem:
            shape = Shape(None, f"template: {problem}")
        else:
            shape = Shape(plan)
            if self.bounds.usable:
                self._plan_split(shape, [[m["content"] for m in r] for r in rows])
        self.shapes[key] = shape
        if shape.note:
            self.tally.notes.add(shape.note)
        return shape

    def _plan_split(self, shape: Shape, contents: list[list[str]]) -> None:
        """Fixed text = template text + contents equal on every sampled row + the common
        prefix/suffix of the others (where the boundary can be clean); count it once."""
        plan = shape.plan
        values = [plan.values(c) for c in contents if plan.holds(c)]
        if not values:
            shape.note = "the template's questions are answered differently by the first rows"
            return
        n = len(plan.refs)
        enough = len(values) >= 8
        const = {j: values[0][j] for j in range(n) if enough and all(v[j] == values[0][j] for v in values)}
        segments, varying, current = [], [], plan.pieces[0]
        for j in range(n):
            if j in const:
                current += const[j] + plan.pieces[j + 1]
            else:
                segments.append(current)
                varying.append(j)
                current = plan.pieces[j + 1]
        segments.append(current)
        pres, sufs = [], []
        for k, j in enumerate(varying):
            column = [v[j] for v in values]
            common = os.path.commonprefix(column) if enough else ""
            pres.append(common[: self.bounds.cut_prefix(segments[k], common)])
            tail = os.path.commonprefix([s[::-1] for s in column])[::-1] if enough else ""
            sufs.append(tail[self.bounds.cut_suffix(tail):])
        m = len(varying)
        fixed = [(sufs[k - 1] if k else "") + segments[k] + (pres[k] if k < m else "") for k in range(m + 1)]
        if m:
            fixed[-1] = sufs[-1] + segments[-1]
        if any(len(f) < max(1, self.bounds.max_added) for f in fixed[1:-1]):
            shape.note = "contents too close together in the template"
            return
        counts = self.hf.count([f for f in fixed if f])
        added = self.light.added_ids
        lefts, rights = [], []
        for k in range(m):
            left_text = fixed[k]
            if left_text:
                ids = self.light.backend.encode(left_text, add_special_tokens=False).ids
                last_added = bool(ids) and any(left_text.endswith(t) and i == ids[-1] for t, i in added.items())
                lefts.append(self.bounds.left(left_text, last_added))
            else:
                lefts.append(None)
            rights.append(self.bounds.right(fixed[k + 1]) if fixed[k + 1] else None)
        shape.split, shape.fixed_tokens = True, sum(counts)
        shape.const, shape.varying = const, varying
        shape.prefixes, shape.suffixes, shape.lefts, shape.rights = pres, sufs, lefts, rights

    def _middles(self, shape: Shape, contents: list[str]) -> list[str] | None:
        values = shape.plan.values(contents)
        for j, value in shape.const.items():
            if values[j] != value:
                return None
        out = []
        for k, j in enumerate(shape.varying):
            value, pre, suf = values[j], shape.prefixes[k], shape.suffixes[k]
            if len(value) <= len(pre) + len(suf) or not value.startswith(pre) or not value.endswith(suf):
                return None
            middle = value[len(pre): len(value) - len(suf)] if suf else value[len(pre):]
            if not self.bounds.clean(middle, shape.lefts[k], shape.rights[k]):
                return None
            out.append(middle)
        return out

    # --- a batch --------------------------------------------------------------------------------------

    def count(self, prompts: list[Any], where=lambda i: f"row {i}") -> list[int]:
        lengths = [0] * len(prompts)
        whole, whole_at, plain, plain_at, mids, mids_at = [], [], [], [], [], []
        keys = [None] * len(prompts)
        if self.method == "fast":
            new: dict[tuple, list[int]] = {}
            for i, p in enumerate(prompts):
                if is_conversational(p):
                    key = keys[i] = shape_key(p)
                    if key is not None and key not in self.shapes:
                        new.setdefault(key, []).append(i)
            for key, rows in new.items():
                self._shape(key, [prompts[i] for i in rows], where(rows[0]))
        checks = []
        for i, p in enumerate(prompts):
            if not is_conversational(p):
                if not isinstance(p, str):
                    raise StatsError(f"{where(i)}: prompt is {type(p).__name__}, neither text nor a list of "
                                     "{role, content} messages. Fix: check the transform.")
                plain.append(p)
                plain_at.append(i)
                continue
            shape = self.shapes.get(keys[i]) if keys[i] is not None else None
            if shape is not None and shape.plan is not None:
                contents = [m["content"] for m in p]
                if shape.plan.holds(contents):
                    middles = self._middles(shape, contents) if shape.split else None
                    if middles is not None:
                        lengths[i] = shape.fixed_tokens
                        mids += middles
                        mids_at += [i] * len(middles)
                        if shape.checked < CHECK_ROWS:
                            shape.checked += 1
                            checks.append((i, shape))
                        continue
                    whole.append(shape.plan.substitute(contents))
                    whole_at.append(i)
                    continue
            whole.append(self.render(p, where(i)))
            whole_at.append(i)
        for i, n in zip(mids_at, self.middles.count_middles(mids)):
            lengths[i] += n
        for i, n in zip(whole_at, self.hf.count(whole)):
            lengths[i] = n
        for i, n in zip(plain_at, self.hf.count(plain, special=True)):
            lengths[i] = n
        if checks and not self._check(prompts, lengths, checks, where):
            return self.count(prompts, where)  # a shape lost its split: count the batch again
        self.tally.split += len(prompts) - len(whole) - len(plain)
        self.tally.whole += len(whole)
        self.tally.plain += len(plain)
        return lengths

    def _check(self, prompts, lengths, checks, where) -> bool:
        """Start-up check: the split count equals the whole count on each shape's first rows."""
        texts = [self.render(prompts[i], where(i)) for i, _ in checks]
        agree = True
        for (i, shape), n in zip(checks, self.hf.count(texts)):
            if n != lengths[i]:
                shape.split = agree = False
                self.tally.notes.add(f"split disagreed with the whole count on {where(i)}; split turned off")
        return agree
