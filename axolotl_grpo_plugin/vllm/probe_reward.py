"""The old path of `char_variety`, kept for existing configs; it lives in axolotl_grpo_rewards.pipeline."""

from axolotl_grpo_rewards.pipeline import char_variety  # noqa: F401
