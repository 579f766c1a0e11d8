"""TRL `GRPOConfig` options that Axolotl (0.19-0.21) has no `trl:` key for, passed through by the plugin.

Axolotl builds TRL's `GRPOConfig` from its own `trl:` schema and drops every other
key, so options such as `top_entropy_quantile`, `delta` or `disable_dropout` cannot
be reached from a yaml. `grpo_plugin.trl_args` carries them: they are checked here
against `GRPOConfig`'s own fields and types when the config is read, and the
plugin's `get_training_args` hands them to Axolotl's RL builder, which passes
plugin training arguments on to `GRPOConfig`.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from ..errors import Problem
from . import invalid
from .defaults import AXOLOTL_NAME, SET_ELSEWHERE, TRL_NAME
from .run import Run
from .schema import axolotl_fields


KEY = "grpo_plugin.trl_args"


@lru_cache(maxsize=1)
def grpo_only_fields() -> dict[str, Any]:
    """GRPOConfig's own fields (not the generic TrainingArguments ones) -> their types."""
    from transformers import TrainingArguments
    from trl import GRPOConfig

    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    try:
        hints = typing.get_type_hints(GRPOConfig)
    except Exception:  # an annotation TRL cannot resolve: check names only
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(GRPOConfig) if f.name not in inherited}


def passable(key: str) -> bool:
    """A GRPOConfig option the installed Axolotl cannot set, which `trl_args` can."""
    return key in grpo_only_fields() and key not in axolotl_fields()["trl"] and key not in SET_ELSEWHERE


def configured(run: Run) -> dict[str, Any]:
    """The `grpo_plugin.trl_args` mapping ({} when unset): what the plugin adds to GRPOConfig."""
    return dict(run.plugin.trl_args or {})


def check(run: Run) -> list[Problem]:
    """Every `trl_args` key a GRPOConfig option Axolotl cannot set, with a value of its type."""
    args = configured(run)
    if not args:
        return []
    fields, axolotl_trl = grpo_only_fields(), axolotl_fields()["trl"]
    problems = []
    for key, value in args.items():
        where = f"{KEY}.{key}"
        if key in axolotl_trl:
            problems.append(Problem(where, value, f"{AXOLOTL_NAME} has this key under `trl:`.",
                                    f"set `trl.{key}` instead, so Axolotl and the plugin do not both set it"))
        elif key in SET_ELSEWHERE:
            problems.append(Problem(where, value, f"{AXOLOTL_NAME} sets this GRPOConfig field itself.",
                                    SET_ELSEWHERE[key]))
        elif key not in fields:
            meant = invalid.closest(key, fields)
            problems.append(Problem(where, value, "TRL's GRPOConfig has no such option.",
                                    f"did you mean `{meant}`?" if meant else
                                    f"see the GRPOConfig reference of {TRL_NAME} for the option names"))
        else:
            bounds = RANGES.get(key, Field())
            try:
                TypeAdapter(Annotated[fields[key], bounds]).validate_python(value, strict=False)
            except ValidationError as exc:
                err = exc.errors()[0]
                if err["type"] in invalid.BOUNDS:
                    text = invalid.range_text(bounds, err.get("ctx") or {})
                    problems.append(Problem(where, value, f"TRL 1.9's GRPOConfig states it must be {text}.",
                                            f"give a value {text}"))
                else:
                    problems.append(Problem(where, value, f"GRPOConfig expects {_type_name(fields[key])} "
                                            f"({err['msg']}).", "give a value of that type"))
            except Exception:  # a type pydantic cannot check: TRL will
                continue
    return problems


# The ranges TRL 1.9's GRPOConfig states (its help texts and __post_init__), for the options
# `trl_args` can pass (the others, e.g. top_p, are `trl:` keys of Axolotl 0.19-0.21, refused above).
RANGES = {
    "top_entropy_quantile": Field(ge=0.0, le=1.0),   # "Range: [0.0-1.0]"
    "delta": Field(gt=0.0),
    "max_tool_calling_iterations": Field(ge=0),
}


def log_reached(run: Run, trainer: Any, log: Any) -> None:
    """Say what the trainer's GRPOConfig holds for each `trl_args` key, so a value that did
    not arrive (an Axolotl change, another plugin overriding it) is seen, not guessed."""
    args = configured(run)
    if not args:
        return
    held = {key: getattr(trainer.args, key, "<missing>") for key in args}
    log.info("GRPOConfig from grpo_plugin.trl_args: %s", ", ".join(f"{k}={v!r}" for k, v in held.items()))
    lost = [key for key, value in args.items() if held[key] != value]
    if lost:
        log.warning("grpo_plugin.trl_args did not reach the trainer for %s: it holds %s",
                    ", ".join(lost), ", ".join(f"{k}={held[k]!r}" for k in lost))


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
