"""Turn registered short names in a config into paths Axolotl's loaders can import;
`load_config`: a config read (config/load.py) with its names resolved, as every tool reads it.

Above the config layer: resolving needs the registry, the transforms and the remote rewards.

Axolotl (0.19-0.21) treats an unimportable reward path as a Hub reward-model id (and
fails with a confusing download error), and its RL dataset loader only imports
`module.function`. A reward given as an import path is rewritten to its contained
wrapper (`axolotl_grpo_plugin.reward_path__module__function`, registry/containment.py),
unless the function sets `reward_contained = False`; a name declared under
`grpo_plugin.remote_rewards` to its served path (remote/declared.py). So names are resolved here, before Axolotl sees them, and a
wrong name becomes a problem that lists the registered names.

Import paths (`rewards.my_reward`, `my_data.load`) are imported from the config's folder first,
then the working folder, then the installed packages: the same in `check`, `axolotl train` and
every tool, whether started as `axolotl-grpo X` or `python -m` (which alone would add the working
folder). `import_folders` is that rule's one owner; reward worker processes inherit `sys.path`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from .config.defaults import AXOLOTL_NAME
from .config.load import copy_config
from .config.run import Run, read_run, write
from .errors import GRPOConfigError, Problem
from .registry import BUILTIN_REWARDS, REWARDS, TRANSFORMS, bound_name, is_contained_path, path_attribute, unbound
from .registry.imports import import_attribute
from .remote import declared
from .sources.transforms import AXOLOTL_RL_STRATEGIES


def load_config(config: Any, *, rewards: bool = True) -> dict[str, Any]:
    """A private plain-dict copy of a config (yaml path, dict or DictDefault) whose registered
    reward and transform names are rewritten to the import paths Axolotl's loaders use; a name
    that does not resolve is a GRPOConfigError. `rewards=False` ignores reward names (for tools
    that never call the rewards)."""
    raw = copy_config(config)
    _, problems = resolve_names(raw, read_run(raw))
    if not rewards:
        problems = [p for p in problems if not p.key.startswith("trl.")]
    if problems:
        raise GRPOConfigError(problems)
    return raw


def import_folders(config_path: Any) -> list[Path]:
    """Where the modules of the config at `config_path` are imported from: its folder first, then
    the working folder."""
    folders = []
    if isinstance(config_path, (str, Path)) and str(config_path):
        folders.append(Path(config_path).resolve().parent)
    cwd = Path.cwd()
    return folders + ([cwd] if cwd not in folders else [])


def make_importable(config_path: Any) -> list[Path]:
    """Put `import_folders(config_path)` at the front of `sys.path`, in that order; returns them."""
    folders = import_folders(config_path)
    for position, folder in enumerate(folders):
        if str(folder) not in sys.path:
            sys.path.insert(position, str(folder))
    importlib.invalidate_caches()
    return folders


def resolve_names(cfg: MutableMapping[str, Any], run: Run) -> tuple[Run, list[Problem]]:
    """Rewrite reward and transform names in the config (and its Run); return the Run and what
    could not be resolved."""
    folders = make_importable(run.config_path)
    problems: list[Problem] = []
    funcs = run.trl.reward_funcs
    specs = run.plugin.remote_rewards or []
    declared.declare(specs)  # in this process: the served path of each
    remote = {spec.name for spec in specs}
    resolved = []
    for i, name in enumerate(funcs):
        if isinstance(name, str) and (name in remote or declared.name_in_path(name) in remote):
            resolved.append(declared.import_path(declared.name_in_path(name) or name))
            continue
        path, problem = _resolve_reward(name, f"trl.reward_funcs[{i}]", folders, run)
        resolved.append(path)
        if problem:
            problems.append(problem)
    if funcs:
        run = write(cfg, run, {"trl.reward_funcs": resolved})
    for name in ("datasets", "test_datasets"):
        entries = cfg.get(name) or []  # (a list: read_run refused another type)
        for i, dataset in enumerate(entries):
            if not hasattr(dataset, "get"):
                continue
            kind = dataset.get("type")
            if not isinstance(kind, str):
                continue
            path, problem = _resolve_transform(kind, f"{name}[{i}].type", folders)
            dataset["type"] = path
            if problem:
                problems.append(problem)
    return run, problems


def _resolve_reward(name: Any, key: str, folders: list[Path], run: Run) -> tuple[Any, Problem | None]:
    if not isinstance(name, str) or not name.strip():
        return name, Problem(key, name, "a reward must be a name or an import path.",
                             f"use one of: {', '.join(REWARDS.names())}")
    base = unbound(REWARDS.strip_import_path(name))[0]
    if base in BUILTIN_REWARDS and BUILTIN_REWARDS[base].lengths:  # built from the config's lengths
        return REWARDS.import_path(bound_name(base, run.completion_length, run.overlong_cache)), None
    if name in REWARDS:
        return REWARDS.import_path(name), None
    if is_contained_path(name):
        return name, _import_problem(key, name, "axolotl_grpo_plugin", name.split(".", 1)[1], folders)
    if (short := REWARDS.strip_import_path(name)) != name:
        if short in REWARDS:
            return name, None
        return name, Problem(key, name, REWARDS.unknown_message(short), "use a registered name")
    if os.path.isdir(name) or ("/" in name and "." not in name.split("/")[0]):
        return name, None  # a local or Hub reward model, which TRL supports
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        problem = _import_problem(key, name, module_name, attr, folders)
        if problem is None:
            return _contained_path(name, module_name, attr), None
        return name, problem
    return name, Problem(key, name, REWARDS.unknown_message(name),
                         "use a registered name, or a `module.function` import path")


def _import_problem(key: str, name: str, module_name: str, attr: str, folders: list[Path]) -> Problem | None:
    error = _import_error(module_name, attr)
    if error is None:
        return None
    what, fix = _import_advice(module_name, attr, error, folders)
    return Problem(key, name, f"cannot import it: {what}; Axolotl would then try it as a Hub reward model.",
                   f"{fix}, or use a registered reward: {', '.join(REWARDS.names())}")


def _import_advice(module_name: str, attr: str, error: str, folders: list[Path]) -> tuple[str, str]:
    """(what went wrong, what to do) for `module_name.attr` that cannot be imported."""
    top = module_name.split(".")[0]
    where = " and ".join(str(f) for f in folders)
    try:
        spec = importlib.util.find_spec(top)
    except Exception:  # noqa: BLE001 - a broken package: the import error says more
        spec = None
    if spec is None:
        return (f"no module `{top}` in {where} (the config's folder, then the working folder) "
                "or the installed packages",
                f"put {top}.py beside the config ({folders[0] / (top + '.py')}), or install the package "
                "that provides it")
    missing = error.partition("No module named ")[2].strip("'\"")
    if error.startswith("ModuleNotFoundError") and (module_name + ".").startswith(missing + "."):
        return (f"no module `{missing}` (the package `{top}` is there)",
                f"correct the module path `{module_name}`")
    origin = _module_file(module_name) or _module_file(top, spec) or f"module `{module_name}`"
    if error.startswith("module "):
        return (f"{origin} has no `{attr}`", f"define `{attr}` in {origin}, or correct the name")
    return (f"importing {origin} failed ({error})", f"fix the error in {origin}")


def _module_file(module_name: str, spec: Any = None) -> str | None:
    """The file `module_name` is read from, or None: a frozen or built-in module (`os`, `sys`) has
    an origin of `frozen` or `built-in`, which is no name to tell the user."""
    module = sys.modules.get(module_name)
    for where in (getattr(module, "__file__", None), getattr(spec, "origin", None)):
        if isinstance(where, str) and os.path.isfile(where):
            return where
    return None


def _contained_path(name: str, module_name: str, attr: str) -> str:
    """The path of the contained wrapper of an import-path reward (registry/containment.py),
    or the path itself when the function opts out (`reward_contained = False`) or is not a
    function (a class Axolotl instantiates, say)."""
    fn = import_attribute(name)
    attribute = path_attribute(name)
    if not callable(fn) or isinstance(fn, type) or attribute is None:
        return name
    if getattr(fn, "reward_contained", True) is False:
        return name
    return f"axolotl_grpo_plugin.{attribute}"


def _resolve_transform(kind: str, key: str, folders: list[Path]) -> tuple[str, Problem | None]:
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
    error = _import_error(module_name, attr)
    if error is None:
        return kind, None
    if _import_error(f"{AXOLOTL_RL_STRATEGIES}.{module_name}", attr) is None:
        return kind, None
    what, fix = _import_advice(module_name, attr, error, folders)
    return kind, Problem(key, kind, f"cannot import `{module_name}.{attr}`: {what}. {TRANSFORMS.unknown_message(kind)}",
                         f"{fix}, or use a registered transform")


def _import_error(module_name: str, attr: str) -> str | None:
    """Why `module_name.attr` cannot be imported, or None when it can."""
    try:
        import_attribute(f"{module_name}.{attr}")
    except AttributeError:
        return f"module {module_name!r} has no attribute {attr!r}"
    except Exception as exc:  # any failure to import is the user's problem to see
        return f"{type(exc).__name__}: {exc}"
    return None


def import_problem(key: str, path: str, folders: list[Path], instead: str) -> Problem | None:
    """Why `path` (`module.attr`) cannot be imported from `folders`, as a Problem on `key` whose
    fix ends with `instead` (what else the key takes), or None when it imports."""
    module_name, _, attr = path.rpartition(".")
    error = _import_error(module_name, attr) if module_name else f"{path!r} is not a `module.attr` path"
    if error is None:
        return None
    if not module_name:
        return Problem(key, path, error + ".", instead)
    what, fix = _import_advice(module_name, attr, error, folders)
    return Problem(key, path, f"cannot import it: {what}.", f"{fix}, or {instead}")
