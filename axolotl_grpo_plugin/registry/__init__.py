"""Short names for reward functions and dataset transforms.

Configs say `correctness` or `gsm8k` instead of import paths. Built-in names live
here; other packages add theirs through the entry-point groups
`axolotl_grpo_plugin.rewards` and `axolotl_grpo_plugin.transforms` (value
`module:attribute`). A transform entry is a loader `fn(cfg, dataset_idx=0)` that
returns the row function, as Axolotl's RL dataset loader expects.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any

from axolotl_grpo_rewards import gsm8k

from .imports import import_attribute


VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

@dataclass(frozen=True)
class BuiltinReward:
    """A registered reward, the one table of what the plugin knows of it: where it lives, the
    dataset columns it reads (TRL passes a row's columns as keywords; the config checks dry-run
    the transform and refuse rows without them, sources/dry_run.py), and the most it pays one
    completion (the demo's curve ceilings; None: not drawn)."""

    target: str  # module:attribute
    columns: tuple[str, ...] = ()
    maximum: float | None = None
    # the target builds the reward from the config's lengths (trl.max_completion_length,
    # grpo_plugin.overlong_cache): the config names it `NAME__MAX__CACHE` (`bound_name`)
    lengths: bool = False


# The repository's top-level `rewards/` folder is installed as `axolotl_grpo_rewards`, so a
# user's own `rewards.py` beside their config never shadows it.
BUILTIN_REWARDS = {
    "correctness": BuiltinReward("axolotl_grpo_rewards.gsm8k:correctness_reward_func", ("answer",),
                                 gsm8k.CORRECT_REWARD),
    "int": BuiltinReward("axolotl_grpo_rewards.gsm8k:int_reward_func", (), gsm8k.INT_REWARD),
    "strict_format": BuiltinReward("axolotl_grpo_rewards.gsm8k:strict_format_reward_func", (),
                                   gsm8k.STRICT_FORMAT_REWARD),
    "soft_format": BuiltinReward("axolotl_grpo_rewards.gsm8k:soft_format_reward_func", (), gsm8k.SOFT_FORMAT_REWARD),
    "xmlcount": BuiltinReward("axolotl_grpo_rewards.gsm8k:xmlcount_reward_func", (), gsm8k.XMLCOUNT_MAX),
    "countdown": BuiltinReward("axolotl_grpo_rewards.countdown:countdown_reward_func", ("numbers", "target")),
    "math_boxed": BuiltinReward("axolotl_grpo_rewards.math_boxed:math_boxed_reward_func", ("answer",)),
    "code_pass_rate": BuiltinReward("axolotl_grpo_rewards.code:code_pass_rate", ("tests",), 1.0),
    "code_all_pass": BuiltinReward("axolotl_grpo_rewards.code:code_all_pass", ("tests",), 1.0),
    "by_data_source": BuiltinReward("axolotl_grpo_plugin.registry.routing:by_data_source", ("data_source",)),
    "soft_overlong": BuiltinReward("axolotl_grpo_rewards.overlong:soft_overlong_punishment", (), 0.0, lengths=True),
}
_BOUND = "__"


def bound_name(name: str, max_completion_length: int, cache: int) -> str:
    """A reward built from the config's lengths, named with them (`soft_overlong__512__128`): the
    name alone rebuilds it in any process, as Axolotl imports it and a reward worker unpickles it."""
    return f"{name}{_BOUND}{max_completion_length}{_BOUND}{cache}"


def unbound(name: str) -> tuple[str, tuple[int, ...]]:
    """`soft_overlong__512__128` -> ("soft_overlong", (512, 128)); any other name -> (name, ())."""
    base, _, rest = name.partition(_BOUND)
    reward = BUILTIN_REWARDS.get(base)
    if reward is None or not reward.lengths or not rest:
        return name, ()
    try:
        return base, tuple(int(part) for part in rest.split(_BOUND))
    except ValueError:
        return name, ()

BUILTIN_TRANSFORMS = {
    "gsm8k": "axolotl_grpo_plugin.transforms.gsm8k:load",
    "countdown": "axolotl_grpo_plugin.transforms.countdown:load",
    "math": "axolotl_grpo_plugin.transforms.math_boxed:load",
    # Python problems with tests, each reference run in the sandbox at load (docs/code.md)
    "code": "axolotl_grpo_plugin.transforms.code:load",
    "humaneval": "axolotl_grpo_plugin.transforms.code:load_humaneval",
    # SFT cold start (R1 format); Axolotl's SFT loader takes `type: axolotl_grpo_plugin.transforms.gsm8k_r1`
    "gsm8k_r1": "axolotl_grpo_plugin.transforms.gsm8k_r1:rows",
    # the same with calculator calls (grpo_plugin.tools): `type: axolotl_grpo_plugin.transforms.gsm8k_tools`
    "gsm8k_tools": "axolotl_grpo_plugin.transforms.gsm8k_tools:rows",
    # the same with the solution's text before each call: `...transforms.gsm8k_tools_interleaved`
    "gsm8k_tools_interleaved": "axolotl_grpo_plugin.transforms.gsm8k_tools_interleaved:rows",
}


# Tools the model may call in its rollouts (`grpo_plugin.tools`); contained where they are loaded
# (tools/loader.py), with the run's time budget.
BUILTIN_TOOLS = {
    "calculator": "axolotl_grpo_rewards.tools:calculator",
}


class UnknownNameError(LookupError):
    """A name that is not registered; the message lists the registered ones."""


class Registry:
    """Name -> `module:attribute` for one kind of thing, built-ins plus entry points."""

    def __init__(
        self,
        kind: str,
        group: str,
        builtins: dict[str, str],
        attr_prefix: str,
        wrap: Callable[[str, str, Any, bool, str], Any] | None = None,
    ):
        self.kind = kind
        self.group = group
        self.builtins = dict(builtins)
        self.attr_prefix = attr_prefix
        self.wrap = wrap  # (name, target, obj, builtin, import_path) -> what load() returns
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    @cached_property
    def targets(self) -> dict[str, str]:
        found = dict(self.builtins)
        for ep in entry_points(group=self.group):
            if VALID_NAME.match(ep.name) and ep.name not in self.builtins:
                found[ep.name] = ep.value
        return found

    def names(self) -> list[str]:
        return sorted(self.targets)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.targets

    def closest(self, name: str) -> str | None:
        matches = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.4)
        return matches[0] if matches else None

    def unknown_message(self, name: str) -> str:
        hint = self.closest(name)
        did_you_mean = f" Did you mean {hint!r}?" if hint else ""
        return (
            f"{name!r} is not a registered {self.kind}.{did_you_mean} "
            f"Registered {self.kind}s: {', '.join(self.names())}."
        )

    def load(self, name: str) -> Any:
        """The object registered under `name`, wrapped once per process when the registry wraps."""
        if name in self._loaded:
            return self._loaded[name]
        obj = self.load_unwrapped(name)
        if self.wrap is None:
            return obj
        with self._lock:
            if name not in self._loaded:
                base = unbound(name)[0]
                target = self.targets[base]
                builtin = self.builtins.get(base) == target
                self._loaded[name] = self.wrap(name, target, obj, builtin, self.import_path(name))
            return self._loaded[name]

    def load_unwrapped(self, name: str) -> Any:
        """Import the object registered under `name`, as its module defines it (a reward bound
        to lengths: built with them)."""
        base, lengths = unbound(name)
        if base not in self:
            raise UnknownNameError(self.unknown_message(name))
        if base in BUILTIN_REWARDS and BUILTIN_REWARDS[base].lengths:
            if not lengths:
                raise UnknownNameError(f"{name!r} is built from the config's lengths: name it in trl.reward_funcs "
                                       "and let the plugin read the config")
            return import_attribute(self.targets[base])(*lengths)
        return import_attribute(self.targets[name])

    def import_path(self, name: str) -> str:
        """The dotted path Axolotl's own loaders can import for `name`.

        It points at a module attribute of `axolotl_grpo_plugin` that resolves the
        name lazily (see the package's `__getattr__`), because Axolotl's RL dataset
        loader only imports `toplevel_module.function`.
        """
        return f"axolotl_grpo_plugin.{self.attr_prefix}{name}"

    def strip_import_path(self, value: str) -> str:
        """The short name inside a path made by `import_path`; other values unchanged."""
        prefix = f"axolotl_grpo_plugin.{self.attr_prefix}"
        return value[len(prefix):] if value.startswith(prefix) else value


def _contain(name: str, target: str, fn: Any, builtin: bool, import_path: str) -> Any:
    from .containment import contain  # imported on first use: keeps the registry light

    return contain(name, target, fn, builtin, import_path)


# Import-path rewards (`my_module.my_reward`) are contained too: the config names them as
# `axolotl_grpo_plugin.reward_path__my_module__my_reward`, which imports the wrapped function.
PATH_PREFIX = "reward_path__"
_PATH_SEP = "__"
_path_rewards: dict[str, Any] = {}
_path_lock = threading.Lock()


def path_attribute(path: str) -> str | None:
    """The package attribute that serves the contained reward at `path`; None when the path
    cannot be spelled that way (a part holding `__`)."""
    parts = path.split(".")
    if len(parts) < 2 or any(not part or _PATH_SEP in part for part in parts):
        return None
    return PATH_PREFIX + _PATH_SEP.join(parts)


def is_contained_path(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(f"axolotl_grpo_plugin.{PATH_PREFIX}")


def original_path(value: str) -> str:
    """`axolotl_grpo_plugin.reward_path__a__b` -> `a.b`; other values unchanged."""
    if not is_contained_path(value):
        return value
    return value.split(PATH_PREFIX, 1)[1].replace(_PATH_SEP, ".")


def load_path_reward(attribute: str) -> Any:
    """The contained wrapper of the import-path reward an attribute made by `path_attribute` names."""
    with _path_lock:
        if attribute in _path_rewards:
            return _path_rewards[attribute]
        path = attribute[len(PATH_PREFIX):].replace(_PATH_SEP, ".")
        module_name, _, attr = path.rpartition(".")
        fn = import_attribute(path)
        from .containment import contain_path

        wrapped = contain_path(path, f"{module_name}:{attr}", fn, f"axolotl_grpo_plugin.{attribute}")
        _path_rewards[attribute] = wrapped
        return wrapped


REWARDS = Registry("reward", "axolotl_grpo_plugin.rewards", {name: r.target for name, r in BUILTIN_REWARDS.items()},
                   "reward_", wrap=_contain)
TRANSFORMS = Registry(
    "transform", "axolotl_grpo_plugin.transforms", BUILTIN_TRANSFORMS, "transform_"
)
TOOLS = Registry("tool", "axolotl_grpo_plugin.tools", BUILTIN_TOOLS, "tool_")
