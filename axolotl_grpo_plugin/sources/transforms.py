"""The one transform loader: a dataset entry's `type:` turned into the row function Axolotl 0.19's
RL loader would call, with the same semantics, for stats, evaluation and the config checks.

Axolotl (utils/data/rl.py) imports `type` as `module.function` (falling back to
`axolotl.prompt_strategies.dpo.MODULE`), calls it as `fn(cfg, dataset_idx=i)`, and
accepts either a row function or `(fn, map_kwargs)`; with `map_kwargs["batched"]`
the function gets a column batch, and a function that takes `tokenizer` gets it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import PluginError
from ..registry.imports import import_attribute
from .data import DatasetSpec, first_line


# Where Axolotl 0.19 looks for a `type` it cannot import as `module.function`.
AXOLOTL_RL_STRATEGIES = "axolotl.prompt_strategies.dpo"


class TransformError(PluginError):
    """A transform that cannot be loaded or fails on the rows, said in one line with the fix."""


@dataclass
class RowTransform:
    """A dataset transform as Axolotl applies it: `fn(row)` or, if `batched`, `fn(batch)`."""

    fn: Callable[..., Any] | None
    batched: bool = False
    fn_kwargs: dict[str, Any] = field(default_factory=dict)
    key: str = "datasets[0]"

    def rows(self, batch: dict[str, list], first_index: int = 0) -> list[dict]:
        """The transformed rows of a column batch (`{column: [values]}`), each a dict."""
        if self.fn is None:
            keys = list(batch)
            return [dict(zip(keys, values)) for values in zip(*batch.values())]
        if self.batched:
            out = self._call(batch, first_index)
            if not isinstance(out, dict):
                raise self._shape_error(out, first_index)
            keys = list(out)
            return [dict(zip(keys, values)) for values in zip(*out.values())]
        keys = list(batch)
        rows = []
        for offset, values in enumerate(zip(*batch.values())):
            out = self._call(dict(zip(keys, values)), first_index + offset)
            if not isinstance(out, dict):
                raise self._shape_error(out, first_index + offset)
            rows.append(out)
        return rows

    def _call(self, data: dict, index: int) -> Any:
        try:
            return self.fn(data, **self.fn_kwargs)
        except PluginError:
            raise
        except Exception as exc:  # the user's transform on the user's rows: name both
            raise TransformError(f"{self.key} row {index}: the transform failed ({type(exc).__name__}: "
                                 f"{first_line(exc) if str(exc) else ''}). "
                                 "Fix: point the dataset at rows of the shape the transform expects.") from None

    def _shape_error(self, out: Any, index: int) -> TransformError:
        return TransformError(f"{self.key} row {index}: the transform returned {type(out).__name__}, not a dict "
                              "of columns. Fix: make the row function return {'prompt': ..., ...}.")


def load_transform(spec: DatasetSpec, cfg: dict[str, Any], dataset_idx: int, tokenizer: Any = None) -> RowTransform:
    """The registered (or `module.function`) transform of a dataset entry, called as Axolotl calls it."""
    from ..registry import TRANSFORMS

    if not spec.transform:
        return RowTransform(None, key=spec.key)
    name = TRANSFORMS.strip_import_path(spec.transform)
    where = f"{spec.key}.type = {spec.transform!r}"
    try:
        if name in TRANSFORMS:
            loaded = TRANSFORMS.load(name)(as_axolotl_cfg(cfg), dataset_idx=dataset_idx)
        elif "." in name:
            loaded = _load_axolotl_strategy(name, cfg, dataset_idx, where)
        else:
            raise TransformError(f"{where}: {TRANSFORMS.unknown_message(name)} "
                                 "Fix: use a registered transform, or `module.function` for your own.")
    except PluginError:
        raise
    except Exception as exc:
        raise TransformError(f"{where}: loading the transform failed ({first_line(exc)}). "
                             "Fix: check the transform's module and options.") from None
    map_kwargs: dict[str, Any] = {}
    if isinstance(loaded, tuple):
        loaded, map_kwargs = loaded
    if not callable(loaded):
        raise TransformError(f"{where}: the loader did not return a function. "
                             "Fix: a transform loader returns `fn` or `(fn, map_kwargs)`.")
    fn_kwargs = dict(map_kwargs.get("fn_kwargs") or {})
    try:
        if "tokenizer" in inspect.signature(loaded).parameters:
            fn_kwargs["tokenizer"] = tokenizer  # Axolotl's _map_dataset passes it the same way
    except (TypeError, ValueError):
        pass
    return RowTransform(loaded, bool(map_kwargs.get("batched")), fn_kwargs, key=spec.key)


def _load_axolotl_strategy(name: str, cfg: dict[str, Any], dataset_idx: int, where: str):
    """`module.function` types, imported as Axolotl imports them (then under its RL strategies);
    one that imports neither way is a TransformError about the path as written."""
    from ..registry import TRANSFORMS

    try:
        load = import_attribute(name)
    except (ImportError, AttributeError) as exc:
        try:
            load = import_attribute(f"{AXOLOTL_RL_STRATEGIES}.{name}")
        except (ImportError, AttributeError):
            module_name, _, attr = name.rpartition(".")
            missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
            why = f"no module `{missing}`" if missing else f"module `{module_name}` has no `{attr}`"
            if not missing and isinstance(exc, ImportError):
                why = first_line(exc)
            raise TransformError(f"{where}: the transform `{name}` could not be imported ({why}). "
                                 f"Fix: use a registered transform ({', '.join(TRANSFORMS.names())}), or a "
                                 "`module.function` importable from the config's folder or the working "
                                 "folder.") from None
    return load(as_axolotl_cfg(cfg), dataset_idx=dataset_idx)


def as_axolotl_cfg(cfg: dict[str, Any]):
    """The config as transform loaders get it from Axolotl: a `DictDefault`."""
    from axolotl.utils.dict import DictDefault

    return DictDefault(cfg)
