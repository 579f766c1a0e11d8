"""`prompt_token_stats`: the sequence budget of a training config or of a tokenizer + dataset."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..config.run import Run, read_run
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


def prompt_token_stats(config_path: str | Path | Mapping[str, Any] | None = None, *, tokenizer: Any = None,
                       dataset: Any = None, split: str | None = None, transform: str | None = None,
                       chat_template: str | None = None, max_completion_length: int | None = None,
                       max_model_len: int | None = None, num_proc: int | None = None, batch_size: int = 1000,
                       top: int = 5, progress: bool = True, method: str = "fast") -> BudgetReport:
    """Prompt-token statistics as the GRPO trainer will see them, and the vLLM budget.

    `config_path` (a yaml path, or a config already read) supplies the tokenizer, chat template,
    datasets and their transforms, and the budgets; any keyword overrides its part (docs/stats.md,
    "Python API"). Without it, `tokenizer` and `dataset` are required. `method`: "fast" (per-word
    counts cached), "full" (whole prompts through `tokenizers`) or "reference" (transformers, rows
    through `datasets`) give the same counts; `num_proc` is accepted and unused (one process).
    Raises `StatsError` (one line with the fix).
    """
    if method not in ("fast", "full", "reference"):
        raise StatsError(f"method = {method!r}: unknown. Fix: use fast, full or reference.")
    explicit = config_path is None
    if explicit and (tokenizer is None or dataset is None):
        raise StatsError("--tokenizer and --dataset are required without a config. "
                         "Fix: pass CONFIG.yaml, or both --tokenizer DIR and --dataset FILE.")
    read = isinstance(config_path, Mapping)  # a config already read (the config checks')
    cfg: dict[str, Any] = {} if explicit else dict(config_path) if read else load_config(config_path)
    if chat_template:  # a .jinja file, or an Axolotl template name
        jinja = Path(chat_template).is_file()
        cfg = {**cfg, "chat_template": "jinja" if jinja else chat_template,
               "chat_template_jinja": str(chat_template) if jinja else None}
    try:
        run = read_run(cfg)
    except PluginError as exc:  # one line, as every stats error
        raise StatsError(" ".join(p.line() for p in exc.problems)) from None
    key, source = _tokenizer_source(run, tokenizer)
    specs = _specs(run, explicit, dataset, split, transform)
    completion, completion_from = _completion_budget(run, max_completion_length)
    if max_model_len is None:
        max_model_len = run.vllm.max_model_len
    preflight(cfg, (key, source), specs)
    with _datasets_bars(progress):
        counts, longest, counter, template_name = _count(cfg, run, key, source, specs, method, batch_size, top, progress,
                                                         _tool_schemas(run))
    info = {
        "config": None if explicit or read else str(config_path),
        "tokenizer": source if isinstance(source, str) else type(source).__name__,
        "chat_template": template_name,
        "datasets": [s.describe() for s in specs],
        "max_completion_length_from": completion_from,
        "tools": list(run.plugin.tools),
    }
    uses_vllm = None if explicit or "use_vllm" not in run.trl.model_fields_set else run.trl.use_vllm
    report = build_report(counts, longest, completion, max_model_len, info, uses_vllm)
    if hasattr(counter, "tally"):
        report.counting = {"method": method, "backend": counter.name, "split_rows": counter.tally.split,
                           "whole_rows": counter.tally.whole, "notes": sorted(counter.tally.notes),
                           "why_backend": counter.why}
    return report


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


def _tool_schemas(run: Run) -> list[dict]:
    """With `grpo_plugin.tools`, TRL renders their schemas into every prompt: they count."""
    from ..names import make_importable
    from ..tools import loader

    if not run.plugin.tools:
        return []
    problems = loader.problems(run, make_importable(run.config_path))
    if problems:
        raise StatsError(" ".join(p.line() for p in problems))
    return loader.schemas(run)


def _count(cfg: dict[str, Any], run: Run, key: str, source: Any, specs: list[DatasetSpec], method: str, batch_size: int,
           top: int, progress: bool, tools: list[dict]):
    """(length histogram, longest prompts, counter, template name) over every dataset entry."""
    from .counting import TransformersCounter
    from .engine import count_entry
    from .fastcount import Counter

    light, tok, template_name = _tokenizers(run, key, source, method)
    counter = Counter(light, method, tools) if light else TransformersCounter(tok, tools)
    counts, longest = np.zeros(0, dtype=np.int64), []
    for i, spec in enumerate(specs):
        row_transform = load_transform(spec, cfg, i, tok)
        if "tokenizer" in row_transform.fn_kwargs and tok is None:  # the transform wants the real tokenizer
            tok = _hf_tokenizer(run, key, source)[0]
            row_transform = load_transform(spec, cfg, i, tok)
        more, top_rows = count_entry(spec, i, counter, row_transform, batch_size=batch_size, top=top,
                                     progress=progress, direct=light is not None)
        size = max(len(counts), len(more))
        counts = np.pad(counts, (0, size - len(counts))) + np.pad(more, (0, size - len(more)))
        longest += top_rows
    return counts, sorted(longest, key=lambda p: (-p.tokens, p.dataset, p.row))[:top], counter, template_name


def _hf_tokenizer(run: Run, key: str, source: Any):
    tok = load_tokenizer(run, source, key) if isinstance(source, (str, Path)) else source
    return tok, apply_chat_template_choice(tok, run)


def _tokenizers(run: Run, key: str, source: Any, method: str):
    """(light tokenizer or None, transformers tokenizer if loaded, template name). No light one for
    `reference`, a Python tokenizer, or remote code that may tokenize outside the Rust backend."""
    from . import light

    local = isinstance(source, (str, Path))
    slow = method == "reference" or local and (run.tokenizer_use_fast is False or run.trust_remote_code)
    cache_key = light.key_for(run, str(source)) if local and not slow else None
    cached = light.load_cached(cache_key) if cache_key else None
    if cached is not None:
        return cached, None, cached.template_name
    tok, name = _hf_tokenizer(run, key, source)
    if slow or not hasattr(tok, "backend_tokenizer"):
        return None, tok, name
    found = light.from_hf(tok, name)
    if cache_key:
        light.save(cache_key, found, tok)
    return found, tok, name


def longest_prompt(cfg: Mapping[str, Any], run: Run) -> int | None:
    """The exact token count of the config's longest prompt when its tokenizer and every dataset are
    local (a check downloads nothing); None otherwise or when they cannot be read (the checks say why)."""
    try:
        _, source = _tokenizer_source(run, None)
        local = isinstance(source, str) and Path(source).is_dir()
        if not local or not all(Path(str(spec.path)).exists() for spec in dataset_specs(run.datasets)):
            return None
        return int(prompt_token_stats(cfg, progress=False).prompt_tokens["max"])
    except PluginError:
        return None


def tool_round_tokens(run: Run) -> int | None:
    """Tokens of the shortest tool round TRL can append to a completion with this config's template:
    the model's call of its first tool (arguments empty), a one-token answer and the next assistant
    header. None without tools, or when the tokenizer is not local (a check downloads nothing). The
    tools must resolve: check_tool_room asks once check_tools (`tools.loader.problems`) found none."""
    from ..tools import loader
    from . import light as light_mod

    try:
        schemas = loader.schemas(run)
        key, source = _tokenizer_source(run, None)
        if not schemas or not (isinstance(source, str) and Path(source).is_dir()):
            return None
        found, tok, _ = _tokenizers(run, key, source, "fast")
    except PluginError:
        return None
    name = schemas[0]["function"]["name"]
    asked = [{"role": "user", "content": "x"}]
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": {}}}]}
    answer = {"role": "tool", "name": name, "content": "0"}
    before, after = asked, [*asked, call, answer]  # both end on an assistant header
    try:
        if found is not None:
            template = light_mod.compile_template(found.chat_template)
            texts = [light_mod.render(template, m, found.variables, schemas, True) for m in (before, after)]
            lengths = [len(e) for e in found.backend.encode_batch_fast(texts, add_special_tokens=False)]
        else:
            lengths = [len(tok.apply_chat_template(m, tools=schemas, add_generation_prompt=True, tokenize=True,
                                                   return_dict=False)) for m in (before, after)]
    except Exception:  # noqa: BLE001 - a template without tool turns: check_tool_template says so
        return None
    return lengths[1] - lengths[0]


def report_from_config(path: str | Path, **overrides: Any) -> BudgetReport:
    """The budget of a training config; `overrides` as in `prompt_token_stats`."""
    return prompt_token_stats(path, **overrides)


def _tokenizer_source(run: Run, tokenizer: Any) -> tuple[str, Any]:
    if tokenizer is not None:
        return "--tokenizer", str(tokenizer) if isinstance(tokenizer, Path) else tokenizer
    for key in ("tokenizer_config", "base_model_config", "base_model"):
        if getattr(run, key):
            return key, str(getattr(run, key))
    raise StatsError("base_model = (not set): the config names no model or tokenizer. "
                     "Fix: set `base_model:` or pass --tokenizer DIR.")


def _specs(run: Run, explicit: bool, dataset: Any, split: str | None,
           transform: str | None) -> list[DatasetSpec]:
    chosen_transform = None if transform == NO_TRANSFORM else transform
    dataset = str(dataset) if isinstance(dataset, Path) else dataset
    if explicit:
        return [DatasetSpec(path=dataset, split=split, transform=chosen_transform, key="--dataset")]
    specs = dataset_specs(run.datasets)
    if dataset is not None:
        if len(specs) != 1:
            raise StatsError(f"--dataset replaces the config's dataset, but it has {len(specs)}. "
                             "Fix: run without a config: --tokenizer DIR --dataset FILE --transform NAME.")
        local = not isinstance(dataset, (str, Path)) or Path(dataset).exists()
        old = specs[0]
        specs = [DatasetSpec(path=dataset, split=split or ("train" if local else old.split),
                             name=None if local else old.name, transform=old.transform, key="--dataset")]
    elif split is not None:
        for spec in specs:
            spec.split = split
    if transform is not None:
        for spec in specs:
            spec.transform = chosen_transform
    return specs


def _completion_budget(run: Run, override: int | None) -> tuple[int, str]:
    if override is not None:
        return int(override), "--max-completion-length"
    if run.trl.max_completion_length is not None:
        return run.trl.max_completion_length, "trl.max_completion_length"
    return run.completion_length, "TRL's default (trl.max_completion_length not set)"
