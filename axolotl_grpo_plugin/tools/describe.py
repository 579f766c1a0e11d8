"""What TRL needs to offer a tool to the model, checked before training (issue 49, item 4).

TRL renders each tool into the prompt through the chat template, as the JSON schema transformers
builds from the function's type hints and `Args:` docstring, and reads the model's tool calls
back with the tokenizer's response parser, which `trl.chat_template_utils.add_response_schema`
sets only for chat templates it knows. Either missing fails inside GRPOTrainer's constructor,
after the model is loaded; these say so first, with the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


TEMPLATES_TRL_PARSES = "Qwen2.5, Qwen3, Qwen3.5/3.6, Llama 3.1/3.2, GLM-4-MoE, gpt-oss, Nemotron 3"


def schema_problem(tool: Callable) -> tuple[str, str] | None:
    """(why, fix) when TRL cannot describe `tool` to the model, or None."""
    from transformers.utils import get_json_schema

    try:
        get_json_schema(tool)
    except Exception as exc:  # DocstringParsingException, TypeHintParsingException, ValueError
        name = getattr(tool, "__name__", repr(tool))
        return (f"TRL cannot build the JSON schema of `{name}` ({type(exc).__name__}: {str(exc)[:200]}).",
                "give every argument a type hint and describe each in an `Args:` section of the docstring, "
                "as axolotl_grpo_rewards.tools.calculator does")
    return None


def template_problem(tokenizer: Any) -> tuple[str, str] | None:
    """(why, fix) when TRL cannot read tool calls back from this tokenizer's completions, or None."""
    if getattr(tokenizer, "response_template", None) is not None or getattr(tokenizer, "response_schema", None):
        return None
    from trl.chat_template_utils import add_response_schema

    try:
        add_response_schema(tokenizer)
    except ValueError:
        return ("TRL cannot parse tool calls from this chat template: it knows " + TEMPLATES_TRL_PARSES + ".",
                "use a model with one of those templates (or set `chat_template:` to one, e.g. qwen_25 for a "
                "ChatML model), or give the tokenizer a `response_template` (transformers' chat response "
                "parsing docs)")
    return None


def effective_template(run: Any) -> str | None:
    """The chat template Axolotl will give the tokenizer: a named `chat_template:` (Axolotl's
    copy), `chat_template_jinja`, or the local tokenizer folder's own; None when unknowable here
    (a Hub tokenizer without network)."""
    import json
    from pathlib import Path

    name = run.chat_template
    if name == "jinja":
        return run.chat_template_jinja
    if isinstance(name, str) and name != "tokenizer_default":
        from axolotl.utils.chat_templates import get_chat_template

        try:
            return get_chat_template(name)
        except Exception:  # an unknown name: Axolotl's own validation says so
            return None
    folder = run.tokenizer_config or run.base_model
    if not isinstance(folder, str) or not Path(folder).is_dir():
        return None
    jinja = Path(folder) / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    template = config.get("chat_template")
    return template if isinstance(template, str) else None


def config_template_problem(run: Any) -> tuple[str, str] | None:
    """`template_problem` for the template this config trains with, or None when unknowable."""
    from types import SimpleNamespace

    template = effective_template(run)
    return None if template is None else template_problem(SimpleNamespace(chat_template=template))
