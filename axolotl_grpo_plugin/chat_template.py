"""The chat template Axolotl installs for a config, shared by stats and evaluation so
prompt counts and evaluated prompts both match what the trainer renders."""

from __future__ import annotations

from typing import Any


def template_choice(cfg: dict[str, Any]) -> str | None:
    """The `chat_template` name Axolotl acts on: `jinja` when only `chat_template_jinja`
    is set (Axolotl's schema fills it in the same way), None when neither is set."""
    choice = cfg.get("chat_template")
    choice = getattr(choice, "value", choice)  # Axolotl's enum, once validated
    if not choice and cfg.get("chat_template_jinja"):
        return "jinja"
    return str(choice) if choice else None


def axolotl_chat_template(cfg: dict[str, Any], choice: str, tokenizer: Any) -> str:
    """Axolotl's template for `choice` (raises ValueError for an unknown one), with the
    config's `default_system_message` substituted into chatml as Axolotl does."""
    from axolotl.utils.chat_templates import get_chat_template_from_config

    template = get_chat_template_from_config({**cfg, "chat_template": choice}, tokenizer=tokenizer)
    if cfg.get("default_system_message") and choice == "chatml":
        template = template.replace("You are a helpful assistant.", cfg["default_system_message"])
    return template
