"""axolotl-grpo-plugin: R1-style GRPO on Axolotl.

Enable with `plugins: [axolotl_grpo_plugin.GRPOPlugin]`. Importing the package
is cheap; Axolotl is only imported when the plugin class is asked for.

Registered rewards and transforms are reachable as `axolotl_grpo_plugin.reward_NAME`
and `axolotl_grpo_plugin.transform_NAME`, the import paths the plugin writes into
the config so Axolotl's own loaders find them.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "GRPOPlugin":
        from .plugin import GRPOPlugin

        return GRPOPlugin
    from .registry import REWARDS, TRANSFORMS, UnknownNameError

    for registry in (REWARDS, TRANSFORMS):
        if name.startswith(registry.attr_prefix):
            try:
                return registry.load(name[len(registry.attr_prefix) :])
            except UnknownNameError as exc:
                raise AttributeError(str(exc)) from None
    raise AttributeError(f"module 'axolotl_grpo_plugin' has no attribute {name!r}")
