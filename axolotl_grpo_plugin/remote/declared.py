"""How a yaml-declared remote reward reaches Axolotl's reward loader, in every process.

Axolotl imports each `trl.reward_funcs` entry by dotted path in the training process (every
rank runs `register` first, which resolves names: names.py). The plugin rewrites a
declared name to `axolotl_grpo_plugin.reward_remote__NAME`; the package's `__getattr__` serves
it from the declarations `resolve_names` recorded in this process (`declare`), contained like
every reward (registry/containment.py). The contained reward pickles by value (its settings),
so a reward worker process, forked or spawned, rebuilds it without the config; the run's spend
ledger (ledger.py), bound here by the plugin's `register` in a training process, travels with it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ..config.args import RemoteRewardSettings
from ..registry.containment import INLINE, ContainedReward
from . import ledger


PREFIX = "reward_remote__"
_declared: dict[str, RemoteRewardSettings] = {}
_ledger: str | None = None  # the run's spend ledger in this process (start_run)
_loaded: dict[str, ContainedReward] = {}
_lock = threading.Lock()


class ContainedRemoteReward(ContainedReward):
    """The safety layer around a RemoteReward, pickled by its settings."""

    def __reduce__(self):
        path = self.__wrapped__.ledger
        return (rebuild, (self.__wrapped__.spec.model_dump(), str(path) if path else None))


def import_path(name: str) -> str:
    return f"axolotl_grpo_plugin.{PREFIX}{name}"


def name_in_path(value: Any) -> str | None:
    """`axolotl_grpo_plugin.reward_remote__NAME` -> NAME; None for any other value."""
    prefix = import_path("")
    return value[len(prefix):] if isinstance(value, str) and value.startswith(prefix) else None


def declare(specs: list[RemoteRewardSettings]) -> None:
    """Record this config's remote rewards in this process (a changed one is rebuilt)."""
    with _lock:
        for spec in specs:
            if _declared.get(spec.name) != spec:
                _declared[spec.name] = spec
                _loaded.pop(spec.name, None)


def start_run(output_dir: str | os.PathLike, names: list[str], *, fresh: bool, main: bool) -> Path | None:
    """Count this training process's remote spend in the run's ledger (ledger.py); the main
    process opens it first (LedgerError for a corrupt or unwritable one) and empties it for a
    fresh run. No remote rewards: nothing is bound, None."""
    path = None
    if names:
        path = ledger.open_for_run(output_dir, fresh=fresh) if main else ledger.ledger_path(output_dir)
    bind_ledger(path)
    return path


def bind_ledger(path: str | os.PathLike | None) -> None:
    """Count this process's remote spend in the run's ledger at `path` (None: per process); the
    rewards loaded so far are rebuilt on their next load."""
    global _ledger
    path = str(path) if path is not None else None
    with _lock:
        if _ledger != path:
            _ledger = path
            _loaded.clear()


def load(name: str) -> ContainedRemoteReward:
    """The contained reward declared as `name` in this process; LookupError when none is."""
    with _lock:
        if name not in _loaded:
            if name not in _declared:
                raise LookupError(f"remote reward {name!r} is not declared in this process "
                                  "(grpo_plugin.remote_rewards is read when the plugin registers)")
            from .calls import deadline_s
            from .reward import RemoteReward

            spec = _declared[name]
            reward = ContainedRemoteReward(RemoteReward(spec, _ledger), name, f"remote {spec.kind}", INLINE,
                                           call_budget_s=deadline_s(spec) + 5)
            reward.import_path = import_path(name)
            _loaded[name] = reward
        return _loaded[name]


def rebuild(dump: dict, ledger: str | None = None) -> ContainedRemoteReward:
    spec = RemoteRewardSettings.model_validate(dump)
    if ledger is not None:  # a reward worker of a training run: the run's ledger travels along
        bind_ledger(ledger)
    declare([spec])
    return load(spec.name)
