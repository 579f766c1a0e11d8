"""Keys no schema knows, in `trl:`, `vllm:`, `grpo_plugin:` and at the top level: Axolotl drops
them without a word, so `check` and `axolotl train` say so, with the key that was probably meant.
The Run reads the keys it knows; these functions read the config's key names, which it cannot tell."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import Problem
from .args import SECTION, GRPOPluginSettings
from .defaults import AXOLOTL_NAME, SET_ELSEWHERE
from .invalid import closest
from .load import section
from .schema import axolotl_fields
from .trl_args import passable


# Keys that reach the plugin's register but are not in Axolotl's input schema.
NOT_IN_SCHEMA = ("capabilities", "env_capabilities")


def unknown_key_problems(cfg: Mapping[str, Any], another_plugin: bool = False) -> list[Problem]:
    """Keys Axolotl would drop without a word, with the key that was probably meant (the config's
    key names: what the Run, which reads the keys it knows, cannot tell)."""
    fields = {**axolotl_fields(), SECTION: frozenset(GRPOPluginSettings.model_fields)}
    problems = []
    for name in ("trl", "vllm", SECTION):
        for key, value in section(cfg, name).items():
            if key in fields[name]:
                continue
            if name == "trl" and key in SET_ELSEWHERE:
                fix = SET_ELSEWHERE[key]
            elif name == "trl" and passable(key):
                fix = (f"TRL's GRPOConfig has it: move it to `grpo_plugin: {{trl_args: {{{key}: {value!r}}}}}`, "
                       "which the plugin passes to TRL")
            else:
                meant = closest(key, fields[name])
                fix = f"did you mean `{name}.{meant}`?" if meant else (
                    f"remove it; known `{name}:` keys are listed by "
                    "`axolotl config-schema`" if name != SECTION else
                    f"remove it; known keys: {', '.join(sorted(fields[name]))}")
            problems.append(Problem(f"{name}.{key}", value,
                                    f"{AXOLOTL_NAME} does not know this key and would silently ignore it.", fix))
    unknown = set(unknown_top_level(cfg, another_plugin))
    for key, value in cfg.items():
        if key in fields["trl"] and key not in fields["top"]:
            problems.append(Problem(key, value, "this is a GRPO setting but it is at the top level, "
                                    "where Axolotl ignores it.", f"move it under `trl:` as `trl.{key}`"))
        elif key in unknown and (meant := misspelled_top_level(cfg, key)) is not None:
            problems.append(Problem(key, value, f"{AXOLOTL_NAME} does not know this key and would silently "
                                    f"ignore it, and `{meant}` is not set.", f"did you mean `{meant}`?"))
    return problems


def unknown_top_level(cfg: Mapping[str, Any], another_plugin: bool = False) -> list[str]:
    """Top-level keys no schema knows (Axolotl's, its CLI's, ours): Axolotl drops them without a
    word. None when the config lists another plugin, which may add keys of its own."""
    if another_plugin:
        return []
    known = axolotl_fields()["top"] | axolotl_fields()["cli"] | {SECTION, *NOT_IN_SCHEMA}
    return [key for key in cfg if key not in known and key not in axolotl_fields()["trl"]]


def misspelled_top_level(cfg: Mapping[str, Any], key: str) -> str | None:
    """The known key an unknown one (`unknown_top_level`) was probably meant to be, when that key is absent."""
    close = difflib.get_close_matches(key, sorted(axolotl_fields()["top"]), n=1, cutoff=0.8)
    return close[0] if close and close[0] not in cfg else None


def unknown_top_level_warnings(cfg: Mapping[str, Any], another_plugin: bool = False) -> list[str]:
    return [f"`{key}` is not a key {AXOLOTL_NAME} knows: it is ignored. Remove it (or check its spelling: "
            "`axolotl config-schema` lists the keys)." for key in unknown_top_level(cfg, another_plugin)
            if misspelled_top_level(cfg, key) is None]
