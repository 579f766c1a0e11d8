"""Is this Axolotl config ours?

Axolotl 0.19 runs a plugin only for configs that list it under `plugins:`. From 0.21 an
installed plugin registers itself through the `axolotl.plugins` entry point (pyproject) and
Axolotl calls its hooks on EVERY config: an SFT or DPO run must not meet our GRPO checks,
our vLLM launcher or our trainer hooks. So each hook asks `applies(cfg)` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.args import SECTION


# The names a config may list us under (Axolotl accepts `module.Class` and `module:Class`).
PLUGIN_NAME = "axolotl_grpo_plugin.GRPOPlugin"  # as the shipped configs list it
PLUGIN_NAMES = frozenset({PLUGIN_NAME, "axolotl_grpo_plugin.plugin.GRPOPlugin"})
# The thread-count plugin for configs we do not train (plugin.CPUThreadsPlugin): no keys, no schema.
THREADS_PLUGIN_NAMES = frozenset({"axolotl_grpo_plugin.CPUThreadsPlugin", "axolotl_grpo_plugin.plugin.CPUThreadsPlugin"})


def _is_us(name: Any) -> bool:
    return str(name).replace(":", ".") in PLUGIN_NAMES


def listed(cfg: Mapping[str, Any]) -> bool:
    """The config names the plugin under `plugins:`."""
    return any(_is_us(name) for name in cfg.get("plugins") or [])


def lists_threads_plugin(cfg: Mapping[str, Any]) -> bool:
    """The config names plugin.CPUThreadsPlugin under `plugins:`."""
    return any(str(name).replace(":", ".") in THREADS_PLUGIN_NAMES for name in cfg.get("plugins") or [])


def only_ours(cfg: Mapping[str, Any]) -> bool:
    """Every plugin the config lists is this one or CPUThreadsPlugin (or none is listed): no other
    plugin adds keys or schema of its own, so Axolotl's schema plus ours is the whole of what the
    config may say."""
    return all(_is_us(name) or str(name).replace(":", ".") in THREADS_PLUGIN_NAMES for name in cfg.get("plugins") or [])


def applies(cfg: Mapping[str, Any]) -> bool:
    """Listed under `plugins:`, or `rl: grpo` (with the entry point, `plugins:` is optional for a
    GRPO config), or a `grpo_plugin:` section in a config that does not list CPUThreadsPlugin (an
    SFT config listing it may carry the section for our transforms: see CPUThreadsPluginArgs)."""
    if listed(cfg):
        return True
    rl = cfg.get("rl")
    if str(getattr(rl, "value", rl)) == "grpo":
        return True
    return SECTION in cfg and not lists_threads_plugin(cfg)


def first_instance(plugin: Any) -> bool:
    """False for a second GRPOPlugin in Axolotl's plugin manager: a config listing us under
    another spelling (`axolotl_grpo_plugin.plugin.GRPOPlugin`) than the entry point's adds a
    second instance, and its hooks would start a second vLLM server."""
    try:
        from axolotl.integrations.base import PluginManager

        plugins = list(PluginManager.get_instance().plugins.values())
    except Exception:  # no manager (tests calling hooks directly): the plugin is alone
        return True
    ours = [p for p in plugins if type(p) is type(plugin)]
    return all(p is not plugin for p in ours[1:])
