"""axolotl-grpo-plugin: R1-style GRPO on Axolotl.

Enable with `plugins: [axolotl_grpo_plugin.GRPOPlugin]`. Importing the package
is cheap; Axolotl is only imported when the plugin class is asked for.

Registered rewards and transforms are reachable as `axolotl_grpo_plugin.reward_NAME`
and `axolotl_grpo_plugin.transform_NAME`, the import paths the plugin writes into
the config so Axolotl's own loaders find them. A reward given as an import path
(`my_module.my_reward`) is served, contained, as `axolotl_grpo_plugin.reward_path__my_module__my_reward`,
and a reward declared under `grpo_plugin.remote_rewards` as `axolotl_grpo_plugin.reward_remote__NAME`.
"""

import logging


__version__ = "0.1.0"

# Axolotl's log filter passes INFO from loggers named axolotl*, but the root level is WARNING: every
# logger of this package (axolotl_grpo_plugin.*) inherits INFO from here, so a once-a-run line (the
# tools, the vLLM server, the spend ledger) shows in `axolotl train` whichever module logs it.
logging.getLogger("axolotl_grpo_plugin").setLevel(logging.INFO)


def __getattr__(name: str):
    if name in ("GRPOPlugin", "CPUThreadsPlugin"):
        from . import plugin

        return getattr(plugin, name)
    from .registry import PATH_PREFIX, REWARDS, TRANSFORMS, UnknownNameError, load_path_reward

    if name.startswith("reward_remote__"):  # a yaml-declared remote reward (remote/declared.py)
        from .remote import declared

        try:
            return declared.load(name[len(declared.PREFIX):])
        except LookupError as exc:
            raise AttributeError(str(exc)) from None

    if name.startswith(PATH_PREFIX):
        try:
            return load_path_reward(name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise AttributeError(f"{name}: {type(exc).__name__}: {exc}") from None

    for registry in (REWARDS, TRANSFORMS):
        if name.startswith(registry.attr_prefix):
            try:
                return registry.load(name[len(registry.attr_prefix) :])
            except UnknownNameError as exc:
                raise AttributeError(str(exc)) from None
    raise AttributeError(f"module 'axolotl_grpo_plugin' has no attribute {name!r}")
