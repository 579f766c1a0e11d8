"""Chat templates rendered as transformers 5 renders them, and once per prompt shape.

`render` is `apply_chat_template(..., tokenize=False)` without transformers: the same
jinja2 sandbox, options, filters and globals (`transformers.utils.chat_template_utils.
_cached_compile_jinja_template`), the tokenizer's special tokens as variables.

`trace` renders a template once for a prompt *shape* (roles and every field except the
message contents) with each content replaced by a `Traced` string. The output is then
fixed text around the contents, possibly stripped (`| trim`). Everything else the
template asks about a content (`if content`, `'x' in content`, `content == ...`) is
recorded as a predicate with the answer it got; a row whose contents give the same
answers takes the same path through the template, so its rendering is that fixed text
with its own contents put in. Anything the tracer cannot model (slicing, `split`,
`replace`, two contents compared) marks the shape opaque, and its rows are rendered
one by one. `Plan.verify` checks the substitution against real renders as well.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar


OPEN, CLOSE = "\ue000", "\ue001"
SENTINEL = re.compile(OPEN + "(.)" + CLOSE, re.DOTALL)
STRIPS = ("strip", "lstrip", "rstrip")


class TemplateError(ValueError):
    """The template failed to render (its own `raise_exception`, a jinja error)."""


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

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def render(template, messages: list[dict], variables: dict[str, Any]) -> str:
    """One conversation with the generation prompt, as TRL asks for it."""
    return template.render(messages=messages, tools=None, documents=None, add_generation_prompt=True, **variables)


# --- the tracer -------------------------------------------------------------------------------------

class Opaque(Exception):
    """The template does something with a content that the tracer does not model."""


Ref = tuple  # (slot index, ops applied in order, e.g. ("strip",))


def apply_ops(value: str, ops: tuple[str, ...]) -> str:
    for op in ops:
        value = getattr(value, op)()
    return value


class Tracer:
    """Holds the reference contents, the refs seen, and the predicates the template asked."""

    def __init__(self, reference: list[str]):
        self.reference = reference
        self.refs: list[Ref] = []
        self.predicates: list[tuple[tuple, str, tuple, Any]] = []
        self.opaque: str | None = None

    def sentinel(self, ref: Ref) -> str:
        if ref not in self.refs:
            if len(self.refs) >= 256:
                raise Opaque("more than 256 content references")
            self.refs.append(ref)
        return OPEN + chr(0xE100 + self.refs.index(ref)) + CLOSE

    def concrete(self, parts: tuple, contents: list[str]) -> str:
        return "".join(p if isinstance(p, str) else apply_ops(contents[p[0]], p[1]) for p in parts)

    def mark_opaque(self, why: str) -> None:
        if self.opaque is None:
            self.opaque = why


def _join(parts) -> tuple:
    out: list = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += p
                continue
        out.append(p)
    return tuple(out)


class Traced(str):
    """A message content standing in for every row's content of one slot."""

    def __new__(cls, parts: tuple, tracer: Tracer):
        parts = _join(parts)
        text = "".join(p if isinstance(p, str) else tracer.sentinel(p) for p in parts)
        obj = str.__new__(cls, text)
        obj._parts, obj._tracer = parts, tracer
        return obj

    def _concrete(self) -> str:
        return self._tracer.concrete(self._parts, self._tracer.reference)

    def _ask(self, name: str, args: tuple, kwargs: dict):
        if kwargs or any(isinstance(a, Traced) for a in args):
            self._tracer.mark_opaque(f"{name} with keyword or content arguments")
        result = getattr(str, name)(self._concrete(), *args, **kwargs)
        if result is NotImplemented:  # compared with a non-string: the answer does not depend on the content
            return result
        if isinstance(result, (bool, int)) or result is None:
            self._tracer.predicates.append((self._parts, name, tuple(args), result))
        else:
            self._tracer.mark_opaque(f"content.{name}()")
        return result

    def __add__(self, other):
        if isinstance(other, Traced):
            return Traced(self._parts + other._parts, self._tracer)
        if isinstance(other, str):
            return Traced(self._parts + (str.__str__(other),), self._tracer)
        return NotImplemented

    def __radd__(self, other):
        if isinstance(other, str):
            return Traced((str.__str__(other),) + self._parts, self._tracer)
        return NotImplemented

    def __bool__(self):
        result = bool(self._concrete())
        self._tracer.predicates.append((self._parts, "__bool__", (), result))
        return result

    def __hash__(self):
        return str.__hash__(self)

    def _strip(self, name: str, chars=None):
        if chars is not None:
            self._tracer.mark_opaque(f"content.{name}(chars)")
            return getattr(str, name)(self._concrete(), chars)
        parts = list(self._parts)
        if name in ("strip", "lstrip"):
            parts = self._strip_side(parts, "lstrip")
        if name in ("strip", "rstrip"):
            parts = self._strip_side(parts[::-1], "rstrip")[::-1]
        return Traced(tuple(parts), self._tracer)

    def _strip_side(self, parts: list, op: str) -> list:
        """Strip whitespace from one end: literals directly; a content gets the op, and if
        the reference content is all whitespace the strip goes on (recorded as a predicate)."""
        out = list(parts)
        while out:
            head = out[0]
            if isinstance(head, str):
                stripped = getattr(head, op)()
                if stripped:
                    out[0] = stripped
                    return out
                out.pop(0)
                continue
            slot, ops = head
            ref = (slot, ops + (op,))
            empty = apply_ops(self._tracer.reference[slot], ref[1]) == ""
            self._tracer.predicates.append(((ref,), "__bool__", (), not empty))
            out[0] = ref
            if not empty:
                return out
            out.pop(0)
        return out

    def strip(self, chars=None):
        return self._strip("strip", chars)

    def lstrip(self, chars=None):
        return self._strip("lstrip", chars)

    def rstrip(self, chars=None):
        return self._strip("rstrip", chars)


_OWN = {"__new__", "__init__", "__getattribute__", "__setattr__", "__delattr__", "__class__", "__init_subclass__",
        "__subclasshook__", "__reduce__", "__reduce_ex__", "__getnewargs__", "__sizeof__", "__dir__", "__repr__",
        "__str__", "__hash__", "__format__", "__doc__", "__add__", "__radd__", "__bool__", "strip", "lstrip",
        "rstrip", "__getstate__"}


def _asker(name: str):
    def method(self, *args, **kwargs):
        return self._ask(name, args, kwargs)

    method.__name__ = name
    return method


for _name in dir(str):
    if _name not in _OWN and callable(getattr(str, _name)):
        setattr(Traced, _name, _asker(_name))


# --- a shape's plan ------------------------------------------------------------------------------

@dataclass
class Plan:
    """A rendered shape: `pieces[0] + v[0] + pieces[1] + ... + pieces[-1]`, where `v[i]` is
    `refs[i]` (a content slot with its ops) taken from a row; valid for a row when every
    predicate gives the recorded answer. `opaque` names why no plan could be made."""

    pieces: list[str] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    predicates: list = field(default_factory=list)
    opaque: str | None = None

    def holds(self, contents: list[str]) -> bool:
        for parts, name, args, result in self.predicates:
            value = "".join(p if isinstance(p, str) else apply_ops(contents[p[0]], p[1]) for p in parts)
            if name == "__bool__":
                if bool(value) != result:
                    return False
            elif getattr(str, name)(value, *args) != result:
                return False
        return True

    def values(self, contents: list[str]) -> list[str]:
        return [apply_ops(contents[slot], ops) for slot, ops in self.refs]

    def substitute(self, contents: list[str]) -> str:
        out = [self.pieces[0]]
        for value, piece in zip(self.values(contents), self.pieces[1:]):
            out += [value, piece]
        return "".join(out)


def trace(template, messages: list[dict], variables: dict[str, Any]) -> Plan:
    """Render `messages` (of one shape) once with traced contents; see the module docstring."""
    contents = [m["content"] for m in messages]
    tracer = Tracer(contents)
    traced = [dict(m, content=Traced(((i, ()),), tracer)) for i, m in enumerate(messages)]
    try:
        text = render(template, traced, variables)
    except Opaque as exc:
        return Plan(opaque=str(exc))
    except Exception as exc:  # noqa: BLE001 - the row itself may fail to render; the caller renders it for the message
        return Plan(opaque=f"tracing failed ({type(exc).__name__})")
    if tracer.opaque:
        return Plan(opaque=tracer.opaque)
    pieces, refs = [], []
    last = 0
    for match in SENTINEL.finditer(text):
        pieces.append(text[last:match.start()])
        index = ord(match.group(1)) - 0xE100
        if not 0 <= index < len(tracer.refs):
            return Plan(opaque="a content reached the output in a form the tracer cannot follow")
        refs.append(tracer.refs[index])
        last = match.end()
    pieces.append(text[last:])
    if any(OPEN in p or CLOSE in p for p in pieces):
        return Plan(opaque="a content reached the output in a form the tracer cannot follow")
    plan = Plan(pieces, refs, list(tracer.predicates))
    return plan


# Contents that make a template's content handling show: whitespace at both ends, quotes and
# backslashes (tojson), jinja and special-token syntax, non-ASCII, empty.
PROBES = ("  \n leading and trailing whitespace \n\n", 'quotes " \' and \\ backslash\n', "{{ x }} {% if %} <|im_end|>",
          "naïve café 数学 🙂", "x", "")


def verify(template, messages: list[dict], variables: dict[str, Any], plan: Plan) -> str | None:
    """Why the plan disagrees with real renders of this row and of probe contents (None: agrees)."""
    if plan.opaque:
        return plan.opaque
    trials = [[m["content"] for m in messages]]
    trials += [[probe] * len(messages) for probe in PROBES]
    for contents in trials:
        if not plan.holds(contents):
            continue
        real = [dict(m, content=c) for m, c in zip(messages, contents)]
        try:
            expected = render(template, real, variables)
        except Exception:  # noqa: BLE001, S112 - a probe the template refuses says nothing about the substitution
            continue
        if plan.substitute(contents) != expected:
            return f"substitution differs from the real render for content {contents[0][:20]!r}"
    return None
