"""The tokenizer a config trains with, configured as Axolotl's `load_tokenizer` configures it
(class, fast/legacy flags, revision, `special_tokens:` and `tokens:`), for stats and
evaluation: added tokens change how prompt text splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PluginError
from .data import first_line


class TokenizerError(PluginError):
    """The tokenizer cannot be loaded; the message names the key and the fix."""


def load_tokenizer(run: Any, source: Any, key: str, fix: str | None = None):
    """The tokenizer as Axolotl's `load_tokenizer` configures it (`run`: the config's Run), minus
    the model config. `key`: the flag or config key that named `source`; `fix`: what the failing
    command's user can do about a tokenizer that does not load ("" for none: the caller says it),
    by default what fits `key` (pass that flag another folder, or set that config key).

    Same class, fast/legacy flags, revision, added and special tokens; the chat
    template is applied separately by `apply_chat_template_choice`.
    """
    if not isinstance(source, (str, Path)):
        return source  # an already loaded tokenizer (Python API)
    import transformers

    kwargs: dict[str, Any] = {}
    if run.tokenizer_legacy is not None:
        kwargs["legacy"] = run.tokenizer_legacy
    if run.revision_of_model:
        kwargs["revision"] = run.revision_of_model
    cls = getattr(transformers, run.tokenizer_class, None)
    if cls is None:
        raise TokenizerError(f"tokenizer_type = {run.tokenizer_type!r} is not a transformers class. "
                         "Fix: use e.g. AutoTokenizer or remove the key.")
    use_fast = run.tokenizer_use_fast
    try:
        tokenizer = cls.from_pretrained(
            str(source), trust_remote_code=bool(run.trust_remote_code),
            use_fast=True if use_fast is None else use_fast, **kwargs)
    except Exception as exc:  # OSError, ValueError, connection errors: all mean "cannot load it"
        local = Path(str(source)).exists()
        why = first_line(exc) if local else "not a local directory and not loadable from the Hub (offline?)"
        if fix is None:
            fix = tokenizer_fix(key)
        raise TokenizerError(f"{key} = {str(source)!r}: cannot load a tokenizer ({why})."
                             + (f" Fix: {fix}" if fix else "")) from None
    _add_config_tokens(tokenizer, run)
    return tokenizer


def tokenizer_fix(key: str) -> str:
    """The fix for a tokenizer that does not load, for the flag or config key that named it."""
    where = f"pass {key} DIR" if key.startswith("--") else f"set `{key}:` in the config to a folder"
    return f"{where} with a local tokenizer (tokenizer.json or vocab+merges)."


def _add_config_tokens(tokenizer, run: Any) -> None:
    """`special_tokens:` and `tokens:` change how prompt text splits, so apply them as Axolotl does."""
    from transformers import AddedToken

    special = dict(run.special_tokens or {})
    additional = special.pop("additional_special_tokens", None)
    for name, value in special.items():
        tokenizer.add_special_tokens({name: AddedToken(value, rstrip=False, lstrip=False, normalized=False)})
    if run.tokens:
        tokenizer.add_tokens([AddedToken(t, rstrip=False, lstrip=False, normalized=False) for t in run.tokens])
    if additional:
        tokenizer.add_special_tokens({"additional_special_tokens": additional})
