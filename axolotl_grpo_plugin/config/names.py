"""Turn registered short names in a config into paths Axolotl's loaders can import.

Axolotl (0.19-0.21) treats an unimportable reward path as a Hub reward-model id (and
fails with a confusing download error), and its RL dataset loader only imports
`module.function`. So names are resolved here, before Axolotl sees them, and a
wrong name becomes a problem that lists the registered names.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import MutableMapping
from typing import Any

from ..defaults import AXOLOTL_NAME
from ..errors import Problem
from ..registry import REWARDS, TRANSFORMS
from ..sources.transforms import AXOLOTL_RL_STRATEGIES


def resolve_names(cfg: MutableMapping[str, Any]) -> list[Problem]:
    """Rewrite reward and transform names in place; return what could not be resolved."""
    problems: list[Problem] = []
    trl = cfg.get("trl") or {}
    funcs = trl.get("reward_funcs") or []
    if isinstance(funcs, str):
        funcs = [funcs]
    resolved = []
    for i, name in enumerate(funcs):
        path, problem = _resolve_reward(name, f"trl.reward_funcs[{i}]")
        resolved.append(path)
        if problem:
            problems.append(problem)
    if funcs:
        trl["reward_funcs"] = resolved
    for section in ("datasets", "test_datasets"):
        for i, dataset in enumerate(cfg.get(section) or []):
            if not hasattr(dataset, "get"):
                continue
            kind = dataset.get("type")
            if not isinstance(kind, str):
                continue
            path, problem = _resolve_transform(kind, f"{section}[{i}].type")
            dataset["type"] = path
            if problem:
                problems.append(problem)
    return problems


def _resolve_reward(name: Any, key: str) -> tuple[Any, Problem | None]:
    if not isinstance(name, str) or not name.strip():
        return name, Problem(key, name, "a reward must be a name or an import path.",
                             f"use one of: {', '.join(REWARDS.names())}")
    if name in REWARDS:
        return REWARDS.import_path(name), None
    if (short := REWARDS.strip_import_path(name)) != name:
        if short in REWARDS:
            return name, None
        return name, Problem(key, name, REWARDS.unknown_message(short), "use a registered name")
    if os.path.isdir(name) or ("/" in name and "." not in name.split("/")[0]):
        return name, None  # a local or Hub reward model, which TRL supports
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        error = _import_error(module_name, attr)
        if error is None:
            return name, None
        return name, Problem(
            key, name,
            f"cannot import it ({error}); Axolotl would then try it as a Hub reward model.",
            f"fix the import path, or use a registered reward: {', '.join(REWARDS.names())}",
        )
    return name, Problem(key, name, REWARDS.unknown_message(name),
                         "use a registered name, or a `module.function` import path")


def _resolve_transform(kind: str, key: str) -> tuple[str, Problem | None]:
    if kind in TRANSFORMS:
        return TRANSFORMS.import_path(kind), None
    parts = kind.split(".")
    if (short := TRANSFORMS.strip_import_path(kind)) != kind and len(parts) == 2:
        if short in TRANSFORMS:
            return kind, None
        return kind, Problem(key, kind, TRANSFORMS.unknown_message(short), "use a registered name")
    if len(parts) == 1:
        if _import_error(f"{AXOLOTL_RL_STRATEGIES}.{kind}", "default") is None:
            return kind, None
        return kind, Problem(key, kind, TRANSFORMS.unknown_message(kind),
                             "use a registered transform, or `module.function` for your own")
    if len(parts) > 2:
        return kind, Problem(
            key, kind,
            f"{AXOLOTL_NAME}'s RL dataset loader only imports `module.function` (two parts); "
            "a deeper path is silently not found.",
            "register the loader under a short name (entry-point group "
            "`axolotl_grpo_plugin.transforms`), or expose it from a top-level module",
        )
    module_name, attr = parts
    if _import_error(module_name, attr) is None:
        return kind, None
    if _import_error(f"{AXOLOTL_RL_STRATEGIES}.{module_name}", attr) is None:
        return kind, None
    return kind, Problem(
        key, kind,
        f"cannot import `{module_name}.{attr}`. {TRANSFORMS.unknown_message(kind)}",
        "use a registered transform, or check the module is importable from the "
        "directory you launch from",
    )


def _import_error(module_name: str, attr: str) -> str | None:
    """Why `module_name.attr` cannot be imported, or None when it can."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure to import is the user's problem to see
        return f"{type(exc).__name__}: {exc}"
    if not hasattr(module, attr):
        return f"module {module_name!r} has no attribute {attr!r}"
    return None
