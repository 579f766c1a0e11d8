"""`prompt_token_stats`: the sequence budget of a training config or of a tokenizer + dataset."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..defaults import MAX_COMPLETION_LENGTH
from ..errors import PluginError
from .report import BudgetReport, build_report
from .sources import (
    DatasetSpec,
    StatsError,
    apply_chat_template_choice,
    dataset_specs,
    load_config,
    load_tokenizer,
    load_transform,
    preflight,
)


NO_TRANSFORM = "none"
BARS = "HF_DATASETS_DISABLE_PROGRESS_BARS"


def prompt_token_stats(
    config_path: str | Path | Mapping[str, Any] | None = None,
    *,
    tokenizer: Any = None,
    dataset: Any = None,
    split: str | None = None,
    transform: str | None = None,
    chat_template: str | None = None,
    max_completion_length: int | None = None,
    max_model_len: int | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
    top: int = 5,
    progress: bool = True,
    method: str = "fast",
) -> BudgetReport:
    """Prompt-token statistics as the GRPO trainer will see them, and the vLLM budget.

    With `config_path` (a yaml path, or a config already read), everything comes from the Axolotl yaml (`base_model` or
    `tokenizer_config`, `chat_template`, `datasets` and their `type`,
    `trl.max_completion_length`, `vllm.max_model_len`); any keyword given
    overrides that part. Without it, `tokenizer` and `dataset` are required.

    `tokenizer`: a directory or Hub id, or a loaded tokenizer. `dataset`: a local
    json/jsonl/parquet/csv file, a `save_to_disk` directory, a Hub id, or a
    `datasets.Dataset`; with a config, it replaces the config's single dataset
    (name and data_files dropped, the transform kept). `transform`: a registered
    transform name (`gsm8k`), `module.function`, or "none" for a dataset that
    already has a `prompt` column. Raises `StatsError` (one line with the fix).

    `method`: "fast" (per-word counts cached, see `fastcount`), "full" (every prompt
    encoded whole by `tokenizers`) or "reference" (the transformers tokenizer, rows
    through `datasets`); all three give the same counts. `num_proc` is accepted and
    unused (counting runs in one process).
    """
    if method not in ("fast", "full", "reference"):
        raise StatsError(f"method = {method!r}: unknown. Fix: use fast, full or reference.")
    read = isinstance(config_path, Mapping)  # a config already read (the config checks')
    cfg: dict[str, Any] = dict(config_path) if read else load_config(config_path) if config_path is not None else {}
    explicit = config_path is None
    config_path = None if read else config_path
    if explicit and (tokenizer is None or dataset is None):
        raise StatsError("--tokenizer and --dataset are required without a config. "
                         "Fix: pass CONFIG.yaml, or both --tokenizer DIR and --dataset FILE.")
    if chat_template:
        cfg = {**cfg, **_chat_template_keys(chat_template)}
    trl = _section(cfg, "trl")
    plan = Plan(
        cfg=cfg,
        config_path=str(config_path) if config_path is not None else None,
        tokenizer=_tokenizer_source(cfg, tokenizer),
        specs=_specs(cfg, explicit, dataset, split, transform),
        completion=_completion_budget(trl, max_completion_length),
        max_model_len=max_model_len if max_model_len is not None else _config_max_model_len(cfg),
        uses_vllm=None if explicit or "use_vllm" not in trl else bool(trl["use_vllm"]),
    )
    preflight(plan.cfg, plan.tokenizer, plan.specs)
    with _datasets_bars(progress):
        return measure(plan, method=method, batch_size=batch_size, top=top, progress=progress, num_proc=num_proc)


@contextmanager
def _datasets_bars(progress: bool):
    """Hide `datasets`' bars when asked, without importing it (it costs seconds) if unused."""
    loaded, old = sys.modules.get("datasets"), os.environ.get(BARS)
    were_on = not progress and loaded is not None and loaded.is_progress_bar_enabled()
    if not progress:
        os.environ[BARS] = "1"  # read when `datasets` is imported
        if were_on:
            loaded.disable_progress_bars()
    try:
        yield
    finally:
        if not progress:
            os.environ.pop(BARS) if old is None else os.environ.update({BARS: old})
        if were_on:
            loaded.enable_progress_bars()


@dataclass
class Plan:
    """Everything resolved from the config and the overrides, before any loading."""

    cfg: dict[str, Any]
    config_path: str | None
    tokenizer: tuple[str, Any]  # (config key for messages, directory / Hub id / loaded tokenizer)
    specs: list[DatasetSpec]
    completion: tuple[int, str]  # (max_completion_length, where it came from)
    max_model_len: int | None
    uses_vllm: bool | None


def measure(plan: Plan, *, method: str = "fast", batch_size: int = 2048, top: int = 5, progress: bool = True,
            num_proc: int | None = None) -> BudgetReport:
    """Count every prompt of a plan (`engine`): with `tokenizers` and jinja2 alone when the
    tokenizer is cached (`light`); with the transformers tokenizer and `datasets` for
    `reference`, and for a tokenizer that may work outside its Rust backend."""
    from .counting import TransformersCounter
    from .engine import count_entry
    from .fastcount import Counter

    key, source = plan.tokenizer
    light, tok = (None, None) if method == "reference" else _light_tokenizer(plan.cfg, source, key)
    template_name = light.template_name if light else None
    if light is None:
        tok, template_name = _hf_tokenizer(plan.cfg, source if tok is None else tok, key)
    counter = Counter(light, method) if light else TransformersCounter(tok)
    counts, candidates = np.zeros(0, dtype=np.int64), []
    for i, spec in enumerate(plan.specs):
        row_transform = load_transform(spec, plan.cfg, i, tok)
        if "tokenizer" in row_transform.fn_kwargs and tok is None:  # the transform wants the real tokenizer
            tok = _hf_tokenizer(plan.cfg, source, key)[0]
            row_transform = load_transform(spec, plan.cfg, i, tok)
        counted = count_entry(spec, i, counter, row_transform, batch_size=batch_size, top=top, progress=progress,
                              direct=light is not None)
        counts = _add(counts, counted.counts)
        candidates += counted.longest
    longest = sorted(candidates, key=lambda p: (-p.tokens, p.dataset, p.row))[:top]
    completion, completion_from = plan.completion
    info = {
        "config": plan.config_path,
        "tokenizer": source if isinstance(source, str) else type(source).__name__,
        "chat_template": template_name,
        "datasets": [s.describe() for s in plan.specs],
        "max_completion_length_from": completion_from,
    }
    report = build_report(counts, longest, completion, plan.max_model_len, info, plan.uses_vllm)
    if light is not None:
        report.counting = {"method": method, "backend": counter.name, "split_rows": counter.tally.split,
                           "whole_rows": counter.tally.whole + counter.tally.plain,
                           "notes": sorted(counter.tally.notes), "why_backend": counter.why}
    return report


def _hf_tokenizer(cfg: dict[str, Any], source: Any, key: str):
    tok = source if not isinstance(source, (str, Path)) else load_tokenizer(cfg, source, key)
    return tok, apply_chat_template_choice(tok, cfg)


def _light_tokenizer(cfg: dict[str, Any], source: Any, key: str):
    """(light tokenizer, or None for a slow tokenizer; the transformers tokenizer if one was loaded)."""
    from . import light

    if not isinstance(source, (str, Path)):
        name = apply_chat_template_choice(source, cfg)
        return (light.from_hf(source, name) if hasattr(source, "backend_tokenizer") else None), source
    if cfg.get("tokenizer_use_fast") is False or cfg.get("trust_remote_code"):
        return None, None  # a Python tokenizer, or remote code that may tokenize outside the Rust backend
    cache_key = light.key_for(cfg, str(source))
    if cache_key:
        cached = light.load_cached(cache_key)
        if cached is not None:
            return cached, None
    tok = load_tokenizer(cfg, source, key)
    name = apply_chat_template_choice(tok, cfg)
    if not hasattr(tok, "backend_tokenizer"):
        return None, tok
    found = light.from_hf(tok, name)
    if cache_key:
        light.save(cache_key, found)
    return found, tok


def longest_prompt(cfg: Mapping[str, Any]) -> int | None:
    """The exact token count of the config's longest prompt, when its tokenizer and every dataset
    are local (nothing is downloaded for a check); None otherwise or when they cannot be read
    (the config checks report why)."""
    try:
        _, source = _tokenizer_source(cfg, None)
        local = isinstance(source, str) and Path(source).is_dir()
        if not local or not all(Path(str(spec.path)).exists() for spec in dataset_specs(dict(cfg))):
            return None
        return int(prompt_token_stats(cfg, progress=False).prompt_tokens["max"])
    except PluginError:
        return None


def report_from_config(path: str | Path, **overrides: Any) -> BudgetReport:
    """The budget of a training config; `overrides` as in `prompt_token_stats`."""
    return prompt_token_stats(path, **overrides)


def _chat_template_keys(choice: str) -> dict[str, Any]:
    if Path(choice).is_file():
        return {"chat_template": "jinja", "chat_template_jinja": str(choice)}
    return {"chat_template": choice, "chat_template_jinja": None}


def _tokenizer_source(cfg: dict[str, Any], tokenizer: Any) -> tuple[str, Any]:
    if tokenizer is not None:
        return "--tokenizer", str(tokenizer) if isinstance(tokenizer, Path) else tokenizer
    for key in ("tokenizer_config", "base_model_config", "base_model"):
        if cfg.get(key):
            return key, str(cfg[key])
    raise StatsError("base_model = (not set): the config names no model or tokenizer. "
                     "Fix: set `base_model:` or pass --tokenizer DIR.")


def _specs(cfg: dict[str, Any], explicit: bool, dataset: Any, split: str | None,
           transform: str | None) -> list[DatasetSpec]:
    chosen_transform = None if transform == NO_TRANSFORM else transform
    if explicit:
        return [DatasetSpec(path=_path(dataset), split=split, transform=chosen_transform, key="--dataset")]
    specs = dataset_specs(cfg)
    if dataset is not None:
        if len(specs) != 1:
            raise StatsError(f"--dataset replaces the config's dataset, but it has {len(specs)}. "
                             "Fix: run without a config: --tokenizer DIR --dataset FILE --transform NAME.")
        local = not isinstance(dataset, (str, Path)) or Path(dataset).exists()
        old = specs[0]
        specs = [DatasetSpec(path=_path(dataset), split=split or ("train" if local else old.split),
                             name=None if local else old.name, transform=old.transform, key="--dataset")]
    elif split is not None:
        for spec in specs:
            spec.split = split
    if transform is not None:
        for spec in specs:
            spec.transform = chosen_transform
    return specs


def _completion_budget(trl: dict[str, Any], override: int | None) -> tuple[int, str]:
    if override is not None:
        return int(override), "--max-completion-length"
    if trl.get("max_completion_length") is not None:
        return _whole(trl["max_completion_length"], "trl.max_completion_length"), "trl.max_completion_length"
    return MAX_COMPLETION_LENGTH, "TRL's default (trl.max_completion_length not set)"


def _config_max_model_len(cfg: dict[str, Any]) -> int | None:
    value = _section(cfg, "vllm").get("max_model_len")
    return None if value is None else _whole(value, "vllm.max_model_len")


def _section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    value = cfg.get(name) or {}
    if not isinstance(value, dict):
        raise StatsError(f"{name} = {value!r}: must be a mapping of keys. Fix: e.g. `{name}:` followed by "
                         "indented `key: value` lines.")
    return value


def _whole(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StatsError(f"{key} = {value!r}: must be a whole number of tokens, at least 1. Fix: e.g. `{key.split('.')[-1]}: 512`.")
    return value


def _path(dataset: Any) -> Any:
    return str(dataset) if isinstance(dataset, Path) else dataset


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    size = max(len(a), len(b))
    return np.pad(a, (0, size - len(a))) + np.pad(b, (0, size - len(b)))
