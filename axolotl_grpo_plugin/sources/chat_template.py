"""The chat template Axolotl installs for a config, shared by stats and evaluation so
prompt counts and evaluated prompts both match what the trainer renders."""

from __future__ import annotations

from typing import Any

from ..errors import PluginError
from .data import first_line


class ChatTemplateError(PluginError):
    """`chat_template:` names a template Axolotl does not have."""


def template_choice(run: Any) -> str | None:
    """The `chat_template` name Axolotl acts on: `jinja` when only `chat_template_jinja`
    is set (Axolotl's schema fills it in the same way), None when neither is set."""
    choice = run.chat_template
    choice = getattr(choice, "value", choice)  # Axolotl's enum, once validated
    if not choice and run.chat_template_jinja:
        return "jinja"
    return str(choice) if choice else None


def axolotl_chat_template(run: Any, choice: str, tokenizer: Any) -> str:
    """Axolotl's template for `choice` (raises ValueError for an unknown one), with the
    config's `default_system_message` substituted into chatml as Axolotl does."""
    from axolotl.utils.chat_templates import get_chat_template_from_config

    # the two keys Axolotl's get_chat_template_from_config reads
    chosen = {"chat_template": choice, "chat_template_jinja": run.chat_template_jinja}
    template = get_chat_template_from_config(chosen, tokenizer=tokenizer)
    if run.default_system_message and choice == "chatml":
        template = template.replace("You are a helpful assistant.", run.default_system_message)
    return template


def resolve_chat_template(run: Any, tokenizer: Any) -> tuple[str, str | None]:
    """(the choice's name, the template Axolotl installs for it): the tokenizer's own template
    when the config chooses none (or `tokenizer_default` and the tokenizer has one)."""
    choice = template_choice(run)
    if not choice or (choice == "tokenizer_default" and getattr(tokenizer, "chat_template", None)):
        return "tokenizer_default", getattr(tokenizer, "chat_template", None)
    try:
        return choice, axolotl_chat_template(run, choice, tokenizer)
    except ValueError as exc:
        from axolotl.utils.chat_templates.base import _CHAT_TEMPLATES

        names = ", ".join(["tokenizer_default", "jinja", *sorted(_CHAT_TEMPLATES)])
        raise ChatTemplateError(f"chat_template = {choice!r}: {first_line(exc)} Fix: use one of {names}.") from None
