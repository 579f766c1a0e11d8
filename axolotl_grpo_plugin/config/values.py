"""Type and range of every config value the plugin's checks and arithmetic read.

The checks in `checks.py` compute with `micro_batch_size`, `num_generations`, ... and
TRL/Axolotl fail late (after the model loads) on a zero, a negative or a word where a
number belongs. `RULES` states each key's type and range once; `problems` turns every
violation into a `Problem` naming key, value and fix, and `read` gives the other checks
the value they may compute with (the default when unset, None when the value is wrong,
never a zero read as "unset"). Each rule is checked by a pydantic type (`_adapter`): numbers
read as Axolotl's own schema reads them (`"4"` and `1.0e-6` strings included), bools never.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    FiniteFloat,
    InstanceOf,
    StrictBool,
    StrictFloat,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ..errors import Problem


UNSET = object()
WRONG = object()  # under a section of the wrong type (reported for the section)


@dataclass(frozen=True)
class Rule:
    """One key: its kind ("int", "number", "bool", "mapping", "list", "str"), range and fix."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low < value (else low <= value)
    fix: str = ""
    allow: tuple = ()  # extra accepted values (e.g. "auto")

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return ""


def _int(key, low=1, fix="", **kw):
    return Rule(key, "int", low=low, fix=fix, **kw)


def _num(key, low=None, fix="", **kw):
    return Rule(key, "number", low=low, fix=fix, **kw)


# Axolotl/TRL keys our checks compute with, and the section shapes they are read through.
RULES: tuple[Rule, ...] = (
    Rule("trl", "mapping", fix="write it as `trl: {key: value, ...}`"),
    Rule("vllm", "mapping", fix="write it as `vllm: {key: value, ...}`"),
    Rule("datasets", "list", fix="write it as `datasets: [{path: FILE_OR_HUB_ID, type: TRANSFORM}]`"),
    Rule("test_datasets", "list", fix="write it as `test_datasets: [{path: FILE_OR_HUB_ID, type: TRANSFORM}]`"),
    _int("micro_batch_size", fix="set it to the prompts-x-completions each process scores per step, e.g. 4"),
    _int("gradient_accumulation_steps", fix="set it to 1 or more (1 = one micro batch per optimizer step)"),
    _int("eval_batch_size", fix="set it to 1 or more, or remove it to use micro_batch_size"),
    _int("max_steps", fix="set it to 1 or more, or remove it to train for `num_epochs`"),
    _num("num_epochs", low=0, low_open=True, fix="set it above 0, e.g. 1"),
    _num("learning_rate", low=0, low_open=True, fix="set it above 0, e.g. 1.0e-6"),
    _num("val_set_size", low=0, fix="set it to 0 (no split) or a fraction such as 0.05"),
    _int("trl.num_generations", low=2, fix="set it to 2 or more (8-16 is usual): GRPO needs at least 2 "
         "completions per prompt to compute an advantage"),
    _int("trl.num_generations_eval", low=2, fix="set it to 2 or more, or remove it to use num_generations"),
    _int("trl.generation_batch_size", fix="set it to a multiple of micro_batch_size x processes, or remove it"),
    _int("trl.max_completion_length", fix="set it to the completion budget in tokens, e.g. 512"),
    _num("trl.temperature", low=0, low_open=True, fix="set it above 0 (1.0 is TRL's default)"),
    _num("trl.top_p", low=0, high=1, low_open=True, fix="set it in (0, 1] (1.0 keeps all tokens)"),
    _int("trl.top_k", low=0, fix="set it to 0 (off) or more"),
    _num("trl.min_p", low=0, high=1, fix="set it in [0, 1]"),
    _num("trl.repetition_penalty", low=0, low_open=True, fix="set it above 0 (1.0 = no penalty)"),
    _num("trl.beta", low=0, fix="set it to 0 (no KL term) or more"),
    _int("trl.num_iterations", fix="set it to 1 or more"),
    _num("trl.epsilon", low=0, fix="set it to 0 or more (0.2 is TRL's default)"),
    _num("trl.vllm_server_timeout", low=0, low_open=True, fix="set it to the seconds to wait, e.g. 240"),
    _int("trl.vllm_server_port", low=1, high=65535, fix="set it to a port number, e.g. 8000"),
    Rule("trl.use_vllm", "bool", fix="set it to true or false"),
    Rule("trl.async_prefetch", "bool", fix="set it to true or false"),
    Rule("trl.use_data_producer", "bool", fix="set it to true or false"),
    Rule("trl.vllm_enable_sleep_mode", "bool", fix="set it to true or false"),
    Rule("trl.reward_funcs", "list", fix="list one or more rewards, e.g. `reward_funcs: [correctness, xmlcount]`"),
    Rule("trl.reward_weights", "list", fix="give one number per entry of trl.reward_funcs, e.g. `[1.0, 0.5]`"),
    _int("vllm.port", low=1, high=65535, fix="set it to a port number, e.g. 8000"),
    _int("vllm.tensor_parallel_size", fix="set it to 1 or more (GPUs per vLLM engine)"),
    _int("vllm.data_parallel_size", fix="set it to 1 or more (vLLM engines)"),
    _int("vllm.max_model_len", fix="set it to prompt + completion tokens; `axolotl-grpo stats CONFIG` sizes it"),
    _num("vllm.gpu_memory_utilization", low=0, high=1, low_open=True, fix="set it in (0, 1], e.g. 0.85"),
    Rule("bf16", "bool", fix="set it to true, false or auto", allow=("auto",)),
    Rule("fp16", "bool", fix="set it to true or false"),
    Rule("use_trackio", "bool", fix="set it to true or false"),
)
BY_KEY = {rule.key: rule for rule in RULES}


def raw(cfg: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key; UNSET when it is absent, WRONG when its section is not a mapping."""
    node: Any = cfg
    for depth, part in enumerate(key.split(".")):
        if not (hasattr(node, "get") and hasattr(node, "items")):
            return WRONG if depth else UNSET
        if node.get(part) is None:
            return UNSET
        node = node.get(part)
    return node


def _not_bool(value: Any) -> Any:
    # stays hand-written: pydantic's lax int/float read YAML's `true` as 1 (and bytes as digits)
    if isinstance(value, (bool, bytes)):
        raise PydanticCustomError("bool_for_number", "a bool is not a number")
    return value


def _ordered(value: Any) -> Any:
    # stays hand-written: pydantic's lax list also takes a set, whose order (weights vs rewards) is arbitrary
    if not isinstance(value, (list, tuple)):
        raise PydanticCustomError("list_type", "not a list")
    return value


def _one_name(value: Any) -> Any:
    return [value] if isinstance(value, str) else value  # `reward_funcs: correctness`: one reward


OrderedList = Annotated[list[Any], BeforeValidator(_ordered)]


_BOUNDED = {"greater_than", "greater_than_equal", "less_than_equal"}
# kind -> what a value of another type is told
_TYPE_TEXT = {"int": "must be an integer", "number": "must be a number", "bool": "must be true or false",
              "str": "must be a string", "mapping": "must be a mapping of keys"}
# list keys whose entries or length have a rule of their own: (type, what a wrong entry or length is told)
_LISTS: dict[str, tuple[Any, str]] = {
    "trl.reward_funcs": (Annotated[OrderedList, BeforeValidator(_one_name), Field(min_length=1)],
                         "is empty: GRPO needs at least one reward"),
    # strict, as the check always was: a quoted weight ("0.5") is refused, not read as a number
    "trl.reward_weights": (Annotated[list[Annotated[StrictFloat, Field(allow_inf_nan=False)]], BeforeValidator(_ordered)],
                           "every weight must be a finite number"),
}


@cache
def _adapter(rule: Rule) -> TypeAdapter:
    """The pydantic type of one rule: its kind, range and extra accepted values."""
    bounds: dict[str, float] = {}
    if rule.low is not None:
        bounds["gt" if rule.low_open else "ge"] = rule.low
    if rule.high is not None:
        bounds["le"] = rule.high
    kind: Any = {
        "int": Annotated[int, BeforeValidator(_not_bool), Field(**bounds)],
        "number": Annotated[FiniteFloat, BeforeValidator(_not_bool), Field(**bounds)],
        # strict bools, as the check always was: `"yes"` or `1` is refused with the fix, not guessed
        "bool": StrictBool, "str": StrictStr, "mapping": InstanceOf[Mapping],
        "list": _LISTS.get(rule.key, (OrderedList, ""))[0],
    }[rule.kind]
    return TypeAdapter(kind | Literal[rule.allow] if rule.allow else kind)


def coerce(rule: Rule, value: Any) -> tuple[Any, str | None]:
    """(the value as the checks compute with it, None) or (None, what is wrong)."""
    try:
        coerced = _adapter(rule).validate_python(value)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] in _BOUNDED for e in errors):
            return None, f"must be {rule.range_text()}"
        if rule.kind != "list":
            return None, _TYPE_TEXT[rule.kind]
        if any(e["type"] == "list_type" for e in errors):
            return None, f"must be a list, not {type(value).__name__}"
        return None, _LISTS[rule.key][1]
    return coerced, None


def problems(cfg: Mapping[str, Any]) -> list[Problem]:
    """Every key of RULES that is set with a value of the wrong type or out of range."""
    found = []
    for rule in RULES:
        value = raw(cfg, rule.key)
        if value is UNSET or value is WRONG:
            continue
        _, wrong = coerce(rule, value)
        if wrong:
            found.append(Problem(rule.key, value, f"{wrong}.", rule.fix))
    return found


def read(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """The value to compute with: `default` when unset, None when wrong (reported by `problems`)."""
    value = raw(cfg, key)
    if value is UNSET:
        return default
    if value is WRONG:
        return None
    coerced, wrong = coerce(BY_KEY[key], value)
    return None if wrong else coerced


def on(cfg: Mapping[str, Any], key: str) -> bool:
    """A boolean key set to true (a YAML `true`: a quoted "true" is refused by the key's rule)."""
    return read(cfg, key) is True


def half_precision(cfg: Mapping[str, Any]) -> bool:
    """`bf16: true|auto` or `fp16: true`: Axolotl trains in half precision (on a GPU)."""
    return read(cfg, "bf16") in (True, "auto") or on(cfg, "fp16")
