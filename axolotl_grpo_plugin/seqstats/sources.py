"""The tokenizer, chat template, datasets and transforms a config names, through the loaders
the evaluator shares (`..sources`), so both see what the trainer reads. Every failure is a
one-line `StatsError` naming the key, the value and the fix: no traceback for a user sizing GPUs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import names
from ..config.defaults import CONFIG_PATH_KEY
from ..errors import PluginError
from ..sources import data
from ..sources.chat_template import resolve_chat_template
from ..sources.data import DatasetSpec, first_line, looks_like_missing_path, raised_as
from ..sources.tokenizer import load_tokenizer as shared_tokenizer
from ..sources.transforms import RowTransform  # noqa: F401 (re-exported for counting)
from ..sources.transforms import load_transform as shared_transform


class StatsError(PluginError):
    """A problem the user can fix; the message is one line ending with the fix."""


def load_config(path: str | Path) -> dict[str, Any]:
    """The training yaml as a plain dict, transform names resolved (rewards are not used here)."""
    with raised_as(StatsError):
        return names.load_config(Path(path), rewards=False)


def apply_chat_template_choice(tokenizer, run: Any) -> str:
    """Set the chat template the config (its Run) selects, via Axolotl's own resolver; returns its name."""
    with raised_as(StatsError):
        choice, template = resolve_chat_template(run, tokenizer)
    if choice != "tokenizer_default":
        tokenizer.chat_template = template
    return choice


# the shared loaders (Axolotl's own way), their errors raised as StatsError
dataset_specs = raised_as(StatsError)(data.dataset_specs)
load_tokenizer = raised_as(StatsError)(shared_tokenizer)
load_rows = raised_as(StatsError)(data.load_rows)
load_transform = raised_as(StatsError)(shared_transform)


def preflight(cfg: dict[str, Any], tokenizer: tuple[str, Any], specs: list[DatasetSpec]) -> None:
    """Fail in seconds, before the heavy imports, when a Hub id cannot be loaded here.

    transformers retries an unreachable Hub for minutes; a user sizing a run
    offline should hear at once which value to replace with a local path.
    """
    problems = []
    key, source = tokenizer
    if isinstance(source, (str, Path)):
        if looks_like_missing_path(source, bare_name_is_hub=True):
            problems.append(f"{key} = {str(source)!r}: no such directory (relative paths start at {Path.cwd()}). "
                            "Fix: correct the path, build it first, or " + _other_tokenizer(key) + ".")
        elif not Path(str(source)).exists():
            why = hub_unreachable(str(source), "model", cfg.get("revision_of_model"))
            if why:
                problems.append(f"{key} = {str(source)!r}: not a local directory, not in the Hugging Face cache, "
                                f"and the Hub cannot be asked ({why}). "
                                "Fix: " + _other_tokenizer(key) + ", or download it first.")
    for spec in specs:
        if not isinstance(spec.path, str) or Path(spec.path).exists():
            continue
        if looks_like_missing_path(spec.path):
            problems.append(str(data.missing_path(spec, cfg.get(CONFIG_PATH_KEY))))
        elif not os.environ.get("HF_DATASETS_OFFLINE"):
            why = hub_unreachable(spec.path, "dataset", spec.revision)
            if why:
                problems.append(f"{spec.key}.path = {spec.path!r}: not a local file and the Hub cannot be asked "
                                f"({why}). Fix: pass --dataset LOCAL_FILE (json, jsonl, parquet) to read that "
                                "file instead, keeping the rest of the config.")
    if problems:
        raise StatsError("\n".join(problems))


def _other_tokenizer(key: str) -> str:
    """How to name another tokenizer: the flag that named this one, else the config key (plan
    --from-data reads the config's tokenizer and has no --tokenizer flag)."""
    return f"pass {key} DIR" if key.startswith("--") else f"set `{key}:` in the config to a local folder"


def hub_unreachable(repo_id: str, repo_type: str, revision: str | None = None) -> str | None:
    """Why a Hub id cannot be loaded right now (not cached, no network), or None if it may be."""
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
