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
    prefilled_reasoning_tag: bool = Field(
        default=False,
        description=(
            "Set when the chat template already writes `<reasoning>\\n` after the generation "
            "prompt, so completions start inside the reasoning block. The registered "
            "transforms then add a `reasoning_prefill` column and every registered reward "
            "scores each completion as if it began with that tag (docs/rewards-safety.md)."
        ),
    )


class GRPOPluginArgs(BaseModel):
    """Top-level keys the plugin adds to an Axolotl config."""

    grpo_plugin: GRPOPluginSettings | None = None
