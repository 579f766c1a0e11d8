"""Where the prompts come from: the tokenizer, chat template, datasets and transforms
a training config names, resolved the way Axolotl 0.19 resolves them.

Every failure becomes a `StatsError` with one line naming the key, the value and
the fix, because a user sizing GPUs should not have to read a traceback. The
config and the dataset rows are read by `axolotl_grpo_plugin.data_sources`, the
loader the evaluator shares, so both tools see the rows the trainer reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import data_sources
from ..chat_template import axolotl_chat_template, template_choice
from ..data_sources import DATA_SUFFIXES, DatasetSpec, first_line, looks_like_missing_path  # noqa: F401 (DatasetSpec re-exported)

TRL_DEFAULT_MAX_COMPLETION_LENGTH = 256  # trl.GRPOConfig.max_completion_length in TRL 1.9


class StatsError(ValueError):
    """A problem the user can fix; the message is one line ending with the fix."""


def load_config(path: str | Path) -> dict[str, Any]:
    """The training yaml as a plain dict, transform names resolved (rewards are not used here)."""
    with data_sources.raised_as(StatsError):
        return data_sources.load_config(Path(path), rewards=False)


def dataset_specs(cfg: dict[str, Any]) -> list[DatasetSpec]:
    """The `datasets:` entries of a config."""
    with data_sources.raised_as(StatsError):
        return data_sources.dataset_specs(cfg)


# --- tokenizer and chat template ------------------------------------------------------------

def load_tokenizer(cfg: dict[str, Any], source: Any, key: str):
    """The tokenizer as Axolotl's `load_tokenizer` configures it, minus the model config.

    Same class, fast/legacy flags, revision, added and special tokens; the chat
    template is applied separately by `apply_chat_template_choice`.
    """
    if not isinstance(source, (str, Path)):
        return source  # an already loaded tokenizer (Python API)
    import transformers

    kwargs: dict[str, Any] = {}
    if cfg.get("tokenizer_legacy") is not None:
        kwargs["legacy"] = cfg["tokenizer_legacy"]
    if cfg.get("revision_of_model"):
        kwargs["revision"] = cfg["revision_of_model"]
    cls = getattr(transformers, cfg.get("tokenizer_type") or "AutoTokenizer", None)
    if cls is None:
        raise StatsError(f"tokenizer_type = {cfg.get('tokenizer_type')!r} is not a transformers class. "
                         "Fix: use e.g. AutoTokenizer or remove the key.")
    use_fast = cfg.get("tokenizer_use_fast")
    try:
        tokenizer = cls.from_pretrained(
            str(source), trust_remote_code=bool(cfg.get("trust_remote_code")),
            use_fast=True if use_fast is None else use_fast, **kwargs)
    except Exception as exc:  # OSError, ValueError, connection errors: all mean "cannot load it"
        local = Path(str(source)).exists()
        why = first_line(exc) if local else "not a local directory and not loadable from the Hub (offline?)"
        raise StatsError(f"{key} = {str(source)!r}: cannot load a tokenizer ({why}). "
                         "Fix: pass --tokenizer DIR with a local tokenizer (tokenizer.json or vocab+merges).") from None
    _add_config_tokens(tokenizer, cfg)
    return tokenizer


def _add_config_tokens(tokenizer, cfg: dict[str, Any]) -> None:
    """`special_tokens:` and `tokens:` change how prompt text splits, so apply them as Axolotl does."""
    from transformers import AddedToken

    special = dict(cfg.get("special_tokens") or {})
    additional = special.pop("additional_special_tokens", None)
    for name, value in special.items():
        tokenizer.add_special_tokens({name: AddedToken(value, rstrip=False, lstrip=False, normalized=False)})
    if cfg.get("tokens"):
        tokenizer.add_tokens([AddedToken(t, rstrip=False, lstrip=False, normalized=False) for t in cfg["tokens"]])
    if additional:
        tokenizer.add_special_tokens({"additional_special_tokens": additional})


def apply_chat_template_choice(tokenizer, cfg: dict[str, Any]) -> str:
    """Set the chat template the config selects, via Axolotl's own resolver; returns its name."""
    choice = template_choice(cfg)
    if choice:
        from axolotl.utils.chat_templates.base import _CHAT_TEMPLATES

        try:
            template = axolotl_chat_template(cfg, choice, tokenizer)
        except ValueError as exc:
            names = ", ".join(["tokenizer_default", "jinja", *sorted(_CHAT_TEMPLATES)])
            raise StatsError(f"chat_template = {choice!r}: {first_line(exc)} Fix: use one of {names}.") from None
        tokenizer.chat_template = template
        return str(choice)
    return "tokenizer_default"


# --- datasets ---------------------------------------------------------------------------------

def load_rows(spec: DatasetSpec):
    """The raw rows of one dataset entry, loaded the way Axolotl's `load_dataset_with_config` does."""
    with data_sources.raised_as(StatsError):
        return data_sources.load_rows(spec)


# --- transforms ---------------------------------------------------------------------------------

@dataclass
class RowTransform:
    """A dataset transform as Axolotl applies it: `fn(row)` or, if `batched`, `fn(batch)`."""

    fn: Callable[..., Any] | None
    batched: bool = False
    fn_kwargs: dict[str, Any] = field(default_factory=dict)


def load_transform(spec: DatasetSpec, cfg: dict[str, Any], dataset_idx: int, tokenizer) -> RowTransform:
    """The registered (or `module.function`) transform of a dataset entry, called like Axolotl does."""
    if not spec.transform:
        return RowTransform(None)
    from ..registry import TRANSFORMS

    name = TRANSFORMS.strip_import_path(spec.transform)
    try:
        if name in TRANSFORMS:
            loaded = TRANSFORMS.load(name)(as_axolotl_cfg(cfg), dataset_idx=dataset_idx)
        elif "." in name:
            loaded = _load_axolotl_strategy(name, cfg, dataset_idx)
        else:
            raise StatsError(f"{spec.key}.type = {spec.transform!r}: {TRANSFORMS.unknown_message(name)} "
                             "Fix: use a registered transform, or `module.function` for your own.")
    except StatsError:
        raise
    except Exception as exc:
        raise StatsError(f"{spec.key}.type = {spec.transform!r}: loading the transform failed "
                         f"({first_line(exc)}). Fix: check the transform's module and options.") from None
    map_kwargs: dict[str, Any] = {}
    if isinstance(loaded, tuple):
        loaded, map_kwargs = loaded
    if not callable(loaded):
        raise StatsError(f"{spec.key}.type = {spec.transform!r}: the loader did not return a function. "
                         "Fix: a transform loader returns `fn` or `(fn, map_kwargs)`.")
    import inspect

    fn_kwargs = dict(map_kwargs.get("fn_kwargs") or {})
    try:
        if "tokenizer" in inspect.signature(loaded).parameters:
            fn_kwargs["tokenizer"] = tokenizer  # Axolotl's _map_dataset passes it the same way
    except (TypeError, ValueError):
        pass
    return RowTransform(loaded, bool(map_kwargs.get("batched")), fn_kwargs)


def _load_axolotl_strategy(name: str, cfg: dict[str, Any], dataset_idx: int):
    """`module.function` types go through Axolotl's own RL strategy loader."""
    import importlib

    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        module = importlib.import_module(f"axolotl.prompt_strategies.dpo.{module_name}")
    return getattr(module, attr)(as_axolotl_cfg(cfg), dataset_idx=dataset_idx)


def as_axolotl_cfg(cfg: dict[str, Any]):
    """The config as transform loaders get it from Axolotl: a `DictDefault`."""
    from axolotl.utils.dict import DictDefault

    return DictDefault(cfg)


def preflight(cfg: dict[str, Any], tokenizer: tuple[str, Any], specs: list[DatasetSpec]) -> None:
    """Fail in seconds, before the heavy imports, when a Hub id cannot be loaded here.

    transformers retries an unreachable Hub for minutes; a user sizing a run
    offline should hear at once which value to replace with a local path.
    """
    problems = []
    key, source = tokenizer
    if isinstance(source, (str, Path)):
        if looks_like_missing_path(source):
            problems.append(f"{key} = {str(source)!r}: no such directory (relative paths start at {Path.cwd()}). "
                            "Fix: correct the path, build it first, or pass --tokenizer DIR.")
        elif not Path(str(source)).exists():
            why = hub_unreachable(str(source), "model", cfg.get("revision_of_model"))
            if why:
                problems.append(f"{key} = {str(source)!r}: not a local directory, not in the Hugging Face cache, "
                                f"and the Hub cannot be asked ({why}). "
                                "Fix: pass --tokenizer DIR with a local tokenizer, or download it first.")
    for spec in specs:
        if not isinstance(spec.path, str) or Path(spec.path).exists():
            continue
        if looks_like_missing_path(spec.path) or Path(spec.path).suffix.lower() in DATA_SUFFIXES:
            problems.append(str(data_sources.missing_path(spec)))
        elif not os.environ.get("HF_DATASETS_OFFLINE"):
            why = hub_unreachable(spec.path, "dataset", spec.revision)
            if why:
                problems.append(f"{spec.key}.path = {spec.path!r}: not a local file and the Hub cannot be asked "
                                f"({why}). Fix: pass --dataset LOCAL_FILE (json, jsonl, parquet) to read that "
                                "file instead, keeping the rest of the config.")
    if problems:
        raise StatsError("\n".join(problems))


def hub_unreachable(repo_id: str, repo_type: str, revision: str | None = None) -> str | None:
    """Why a Hub id cannot be loaded right now (not cached, no network), or None if it may be.

    Asked once up front because transformers retries an unreachable Hub for minutes.
    """
    from huggingface_hub import HfApi, constants, try_to_load_from_cache

    marker = "tokenizer_config.json" if repo_type == "model" else "README.md"
    try:
        cached = try_to_load_from_cache(repo_id, marker, revision=revision, repo_type=repo_type)
    except Exception:  # an invalid repo id: let from_pretrained say what is wrong
        return None
    if isinstance(cached, str) or constants.HF_HUB_OFFLINE:
        return None
    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, timeout=10)
    except Exception as exc:
        name = type(exc).__name__
        if "NotFound" in name or "Gated" in name or "Unauthorized" in name:
            return None  # reachable: from_pretrained gives the precise message
        return f"{name}: {first_line(exc)[:120]}"
    return None
