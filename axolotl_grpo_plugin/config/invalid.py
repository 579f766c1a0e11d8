"""A pydantic ValidationError as Problems: the one translation of a wrong value into the key, the value and
the fix, for every key the config layer declares (config/run.py's keys and the `grpo_plugin:` schema alike).

Why one: the two sections were translated apart, and the plugin's lost its key path inside a section that
may also be `true`/`false` (`grpo_plugin.doctor.truncation: 2` read as `grpo_plugin.doctor = 2`, with
pydantic's wording). Here a key is the field names and list indices of the error's location; pydantic's
union tags (`bool`, `DoctorSettings`) are left out.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..errors import PLUGIN_KEYS_DOC, Problem


_MAPPING = ("model_type", "model_attributes_type", "dict_type")
BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
_BY_TYPE = {int: "must be an integer", float: "must be a number", bool: "must be true or false", str: "must be a string"}
_BY_ERROR = {"bool_type": bool, "bool_parsing": bool, "int_type": int, "int_parsing": int, "int_from_float": int,
             "float_type": float, "float_parsing": float, "finite_number": float, "string_type": str}


def problems(exc: ValidationError, model: type[BaseModel], data: Mapping[str, Any], prefix: str = "") -> list[Problem]:
    """One Problem per key of `model` that `data` got wrong (`prefix`: the section's own key). The
    alternatives of a union merge into one message; a shallower key is left out where a deeper one
    says more (`doctor` beside `doctor.truncation`)."""
    found: dict[str, tuple[Any, list[str], str]] = {}
    for err in exc.errors():
        path, field, entry, section = _locate(model, err)
        key = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        key = key.removeprefix(".")
        value, doc = _value_at(data, path), getattr(section, "DOC", PLUGIN_KEYS_DOC)
        if err["type"] == "extra_forbidden":
            known = sorted(section.model_fields) if section else []
            meant = closest(path[-1], known)
            wrong = f"is not a key of `{key.rpartition('.')[0]}`"
            fix = f"did you mean `{meant}`?" if meant else f"remove it; the keys here: {', '.join(known)}"
        elif err["type"] == "missing":
            wrong, fix = "is required", f"add it (each key's meaning: {doc})"
        else:
            wrong, fix = _wrong(field, err, value, entry), _fix(field, doc)
        wrongs = found.setdefault(key, (value, [], fix))[1]
        if wrong not in wrongs:
            wrongs.append(wrong)
    keys = [k for k in found if not any(o != k and o.startswith((k + ".", k + "[")) for o in found)]
    return [Problem(k, found[k][0], _joined(found[k][1]) + ".", found[k][2]) for k in keys]


def _locate(model: type[BaseModel], err: dict) -> tuple[list, FieldInfo | None, bool, type[BaseModel] | None]:
    """(the key path, the field it ends at, whether the error is in an entry of that field's list,
    the section the last name belongs to)."""
    path: list = []
    field, node, section = None, model, model
    for part in err["loc"]:
        if isinstance(part, int):
            if node is None:  # inside a leaf's list: its entry
                return path, field, True, section
            path.append(part)
        elif node is not None and part in node.model_fields:
            field, section = node.model_fields[part], node
            path.append(part)
            node = _model_in(field.annotation)
        elif err["type"] == "extra_forbidden" and part == err["loc"][-1] and node is not None:
            return [*path, part], None, False, node
    return path, field, False, section


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (`DoctorSettings | bool`, `list[RemoteRewardSettings] | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _model_in(arg))), None)


def _value_at(data: Any, path: Sequence) -> Any:
    try:
        for part in path:
            data = data.get(part) if isinstance(data, Mapping) else data[part]
    except (LookupError, TypeError):  # a value pydantic read through an alias or a union's other member
        return None
    return data


def _wrong(field: FieldInfo | None, err: dict, value: Any, entry: bool) -> str:
    kind, extra = err["type"], (field.json_schema_extra or {}) if field else {}
    each = "each entry " if entry else ""
    if kind in _MAPPING:
        return "must be a mapping of keys"
    if kind == "list_type" and not entry:
        return f"must be a list, not {'a mapping' if isinstance(value, Mapping) else type(value).__name__}"
    if kind in BOUNDS:
        return f"{each}must be {range_text(field if not entry else None, err.get('ctx') or {})}"
    if extra.get("must"):
        return extra["must"]
    if kind == "literal_error":
        return f"{each}must be {err['ctx']['expected']}"
    annotation = field.annotation if field and not entry else None
    text = _BY_TYPE.get(annotation) or _BY_TYPE.get(_BY_ERROR.get(kind))
    return each + (text or err["msg"].replace("Input should be", "must be"))


def range_text(field: FieldInfo | None, ctx: dict) -> str:
    """`in (0, 1]`, `>= 2`, ... from the field's declared bounds (else the error's)."""
    bounds = {name: getattr(m, name) for m in (field.metadata if field else ()) for name in ("gt", "ge", "lt", "le")
              if getattr(m, name, None) is not None} or ctx
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (bounds["lt"], ")") if "lt" in bounds else (bounds["le"], "]") if "le" in bounds else None
    if low and high:
        return f"in {low[0]}{low[1]:g}, {high[0]:g}{high[1]}"
    if low:
        return f"{'>' if low[0] == '(' else '>='} {low[1]:g}"
    return f"{'<' if high[1] == ')' else '<='} {high[0]:g}"


def _fix(field: FieldInfo | None, doc: str) -> str:
    """The key's own fix (config/run.py's `key`), else its default and the page on its section (`DOC`)."""
    extra = (field.json_schema_extra or {}) if field else {}
    if extra.get("fix"):
        return extra["fix"]
    default = None if field is None or field.is_required() else field.get_default(call_default_factory=True)
    if isinstance(default, (bool, int, float, str)):
        return f"give a valid value, or remove the key for its default, {json.dumps(default)} ({doc})"
    return f"give a valid value (each key's meaning and default: {doc})"


def closest(name: Any, known: Iterable[str]) -> str | None:
    """The known key an unknown one was probably meant to be: the one rule for every section."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _joined(wrongs: list[str]) -> str:
    """A union's alternatives in one phrase: `must be true or false, or 'auto'`."""
    head, *rest = wrongs
    return ", or ".join([head, *(w.removeprefix("must be ") for w in rest)])
