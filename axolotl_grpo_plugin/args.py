"""Where Axolotl imports the plugin's schema (`GRPOPlugin.get_input_args`); it lives in config/args.py."""
from .config.args import GRPOPluginArgs  # noqa: F401
