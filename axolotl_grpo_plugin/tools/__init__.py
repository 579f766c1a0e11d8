"""Tools the model calls during its rollouts: containment (containment.py) and the killable
worker that runs a user's tool (worker.py). The built-in tools are `axolotl_grpo_rewards.tools`."""

from .containment import ToolStats, contain


__all__ = ["ToolStats", "contain"]
