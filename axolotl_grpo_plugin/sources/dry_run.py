"""A dry run of each local dataset entry before the model loads: the file is there, its
transform runs on the first rows, and those rows have `prompt` and the columns the
configured rewards read.

Without it these fail at the first training step (`KeyError: 'prompt'`, a reward's
missing `answer`), after the model has loaded. Only local files are read (cheap:
a few rows, no tokenizer, no model); Hub datasets are skipped, with a warning.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config.defaults import CONFIG_PATH_KEY
from ..errors import PluginError, Problem
from ..registry.imports import import_attribute


SAMPLE_ROWS = 3
SECTIONS = ("datasets", "test_datasets")
# Keywords TRL passes to every reward that are not dataset columns.
TRL_KWARGS = frozenset({"prompts", "completions", "completion_ids", "trainer_state", "log_extra",
                        "log_metric", "environments"})


def problems(cfg: Mapping[str, Any], run: Any) -> list[Problem]:
    """Every local entry of `datasets:` / `test_datasets:` that would fail at the first step."""
    found: list[Problem] = []
    columns = reward_columns(run)
    for section, index, entry in _entries(run):
        found.extend(_entry_problems(cfg, section, index, entry, columns))
    return found


def skipped(run: Any) -> list[str]:
    """A warning for each entry the dry run cannot read (Hub ids, remote files)."""
    from .data import is_local

    out = []
    for section, index, entry in _entries(run):
        path = entry.get("path") if hasattr(entry, "get") else None
        if isinstance(path, str) and path and not is_local(path):
            out.append(f"{section}[{index}].path = {path!r} is not a local file: its transform and columns are "
                       "checked when training loads it, not by the config checks.")
    return out


def train_rows(run: Any) -> tuple[int | None, str]:
    """How many rows training draws from, counted in the local `datasets:` files (less the
    validation split): (rows, what was counted), or (None, ...) when an entry is not local."""
    import math

    from .data import dataset_specs, is_local, load_rows

    total = 0
    for spec in dataset_specs(run.datasets, "datasets"):
        if not is_local(spec.path):
            return None, "a Hub dataset"
        total += len(load_rows(spec, "train"))
    split = run.val_set_size or 0
    held = math.ceil(total * split) if split < 1 else int(split)
    return total - held, f"the training set ({', '.join(str(e.get('path')) for e in run.datasets)})"


def _entries(run: Any):
    for section in SECTIONS:
        for index, entry in enumerate(getattr(run, section)):
            yield section, index, entry


def _entry_problems(cfg, section: str, index: int, entry: Any, columns: dict[str, tuple[str, ...]]) -> list[Problem]:
    from .data import dataset_specs, head_rows, looks_like_missing_path, missing_path

    key = f"{section}[{index}]"
    if not hasattr(entry, "get"):
        return [Problem(key, entry, "a dataset entry must be a mapping.",
                        f"write it as `- {{path: FILE_OR_HUB_ID, type: TRANSFORM}}` under `{section}:`")]
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        return [Problem(f"{key}.path", path, "each dataset entry needs a `path` (a file, a folder or a Hub id).",
                        f"set {key}.path")]
    try:
        spec = dataset_specs([entry], section)[0]
    except PluginError as exc:
        return _as_problems(exc, key, entry)
    spec.key = key
    if not Path(path).exists():
        return missing_path(spec, cfg.get(CONFIG_PATH_KEY)).problems if looks_like_missing_path(path) else []
    try:
        batch = head_rows(spec, SAMPLE_ROWS)
        return _row_problems(cfg, spec, index, batch, columns)
    except PluginError as exc:
        return _as_problems(exc, f"{key}.type" if spec.transform else f"{key}.path",
                            spec.transform or path)


def _row_problems(cfg, spec, index: int, batch: dict, columns: dict[str, tuple[str, ...]]) -> list[Problem]:
    from ..registry import TRANSFORMS
    from .transforms import load_transform

    transform = load_transform(spec, dict(cfg), index)
    if "tokenizer" in transform.fn_kwargs:
        return []  # it needs the tokenizer, which the checks do not load; training checks it
    rows = transform.rows(batch)
    shown = TRANSFORMS.strip_import_path(spec.transform) if spec.transform else None
    type_key = f"{spec.key}.type"
    if not rows:
        return [Problem(type_key if shown else spec.key, shown, f"the transform made no rows from the first "
                        f"{SAMPLE_ROWS} rows of {spec.path}.", "check the transform and the file")]
    have = set(rows[0])
    if "prompt" not in have or any(row.get("prompt") is None for row in rows):
        if not shown:
            return [Problem(type_key, None, f"the entry has no `type` and the rows of {spec.path} have no "
                            f"`prompt` column (columns: {', '.join(sorted(have)) or 'none'}); the first training "
                            "step would fail with KeyError: 'prompt'.",
                            "set `type:` to a transform that makes `prompt` (e.g. gsm8k, countdown, math), "
                            "or add a `prompt` column to the file")]
        return [Problem(type_key, shown, f"the transform's rows have no `prompt` (columns: "
                        f"{', '.join(sorted(have)) or 'none'}); GRPO generates from it.",
                        "make the transform return {'prompt': ..., ...} for every row")]
    found = []
    for reward, needed in columns.items():
        missing = [column for column in needed if column not in have]
        if missing:
            found.append(Problem(type_key if shown else spec.key, shown or spec.path,
                                 f"reward {reward} reads column(s) {', '.join(missing)}, which the rows do not "
                                 f"have (columns: {', '.join(sorted(have))}).",
                                 "use a transform that keeps those columns, or a reward that fits this data"))
    return found


def reward_columns(run: Any) -> dict[str, tuple[str, ...]]:
    """Configured reward -> the dataset columns it reads: the registry's table for registered
    names; for an import path, the function's `reward_columns` attribute and its required
    keyword parameters beyond TRL's own."""
    from ..registry import BUILTIN_REWARDS, REWARDS, original_path

    out: dict[str, tuple[str, ...]] = {}
    for value in run.trl.reward_funcs:
        if not isinstance(value, str):
            continue
        short = REWARDS.strip_import_path(value)
        if short in BUILTIN_REWARDS:
            out[short] = BUILTIN_REWARDS[short].columns
        elif short not in REWARDS and "." in value:
            needed = _function_columns(original_path(value))
            if needed:
                out[original_path(value)] = needed
    return out


def _function_columns(path: str) -> tuple[str, ...]:

    try:
        fn = import_attribute(path)
        declared = tuple(getattr(fn, "reward_columns", ()) or ())
        params = inspect.signature(fn).parameters.values()
    except Exception:  # not importable (reported by names.py) or no signature: nothing known
        return ()
    required = tuple(p.name for p in params if p.default is inspect.Parameter.empty
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in TRL_KWARGS)
    return tuple(dict.fromkeys(declared + required))


def _as_problems(exc: PluginError, key: str, value: Any) -> list[Problem]:
    if exc.problems:
        return list(exc.problems)
    message, _, fix = exc.text.partition(" Fix: ")
    return [Problem(key, value, message, fix.rstrip(".") or "fix the dataset entry")]
