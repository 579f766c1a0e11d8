"""The plugin's config keys, merged into Axolotl's schema (Axolotl's integration convention).

Everything lives under one `grpo_plugin:` section so it never collides with
Axolotl's own keys. Unknown keys in the section are reported by the plugin's
validation with the closest known key, rather than dropped.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GRPOPluginSettings(BaseModel):
    """Keys under `grpo_plugin:`."""

    model_config = ConfigDict(extra="forbid")

    system_prompt_role: Literal["user", "system"] = Field(
        default="user",
        description=(
            "Where registered transforms put the format instruction: prepended to the "
            "user message (as the published GSM8K example does) or as a system message."
        ),
    )
    rollout_log: bool = Field(
        default=True,
        description=(
            "Append every scored completion of the (sync) GRPO trainer to "
            "OUTPUT_DIR/rollouts.jsonl (main process only, flushed each step)."
        ),
    )
    rollout_log_max_mb: float = Field(
        default=256.0,
        ge=0,
        description=(
            "Rotate rollouts.jsonl into a gzipped rollouts.N.jsonl.gz once it grows past this "
            "many MB (0: never rotate)."
        ),
    )
    learning_metrics: bool = Field(
        default=True,
        description=(
            "Log format compliance, answer accuracy, mean completion length and reflection "
            "rate each step under `observe/...` through the trainer's own loggers."
        ),
    )
    reflection_phrases: list[str] | None = Field(
        default=None,
        description=(
            "Self-correction phrases counted by the reflection rate (case-insensitive, whole "
            "words); default: axolotl_grpo_plugin.observe.metrics.DEFAULT_REFLECTION_PHRASES."
        ),
    )


class GRPOPluginArgs(BaseModel):
    """Top-level keys the plugin adds to an Axolotl config."""

    grpo_plugin: GRPOPluginSettings | None = None
