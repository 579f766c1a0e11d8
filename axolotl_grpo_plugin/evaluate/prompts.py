"""Evaluation prompts built exactly as training builds them.

The rows come from the config's datasets through the config's transform (the
same registry Axolotl's RL loader reaches), and are rendered with the config's
chat template the way TRL's GRPOTrainer renders them: `apply_chat_template(...,
add_generation_prompt=True)`, tokenized without extra special tokens.

Which rows: `split="train"` reads `datasets:`; `split="test"` reads
`test_datasets:` when the config has them, else the `test` split of each Hub
dataset in `datasets:`; any other split name is read from the Hub datasets. A
local file has a single split, so it needs `test_datasets:` or an explicit
`dataset=FILE`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..chat_template import axolotl_chat_template, template_choice


class EvalError(ValueError):
    """A problem with the evaluation's inputs, said in one line with the fix."""


@dataclass
class Problem:
    """One prompt to evaluate: chat messages, rendered text, token ids, and its columns."""

    index: int
    messages: Any
    text: str
    input_ids: list[int]
    columns: dict[str, Any] = field(default_factory=dict)


def load_config(config: Any) -> dict[str, Any]:
    """A private copy of the config (yaml path or mapping) with registered names resolved."""
    from ..errors import GRPOConfigError
    from ..resolve import resolve_names

    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise EvalError(f"config file {str(path)!r} not found")
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
        if not isinstance(raw, dict):
            raise EvalError(f"{path} does not hold a yaml mapping of config keys")
    elif hasattr(config, "get"):
        raw = _plain(config)
    else:
        raise EvalError(f"config must be a yaml path or a mapping, got {type(config).__name__}")
    raw = copy.deepcopy(raw)
    problems = resolve_names(raw)
    if problems:
        raise EvalError(str(GRPOConfigError(problems)))
    return raw


def _plain(value: Any) -> Any:
    """DictDefault / pydantic-ish mappings -> plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def dataset_entries(cfg: dict[str, Any], split: str, dataset: str | None = None) -> list[dict]:
    """The dataset configs to read for `split` (see the module docstring)."""
    train = [dict(d) for d in cfg.get("datasets") or [] if hasattr(d, "get")]
    test = [dict(d) for d in cfg.get("test_datasets") or [] if hasattr(d, "get")]
    if dataset is not None:
        template = (test if split == "test" and test else train) or [{}]
        entry = {"path": str(dataset), "type": template[0].get("type")}
        if not Path(dataset).exists():
            entry["split"] = split
        return [entry]
    if split == "test" and test:
        return test
    if not train:
        raise EvalError("the config has no `datasets:`; add one or pass --dataset FILE")
    if split == "train":
        return train
    entries = []
    for i, entry in enumerate(train):
        if Path(str(entry.get("path"))).exists():
            raise EvalError(
                f"datasets[{i}].path = {entry.get('path')!r} is a local file with a single split, "
                f"so there is no {split!r} split; add `test_datasets:` to the config "
                "or name a held-out file (--dataset FILE, or grpo_plugin.eval_at_end.dataset)"
            )
        entries.append({**entry, "split": split})
    return entries


# Axolotl 0.19's `EXTENSIONS_TO_DATASET_TYPES` (utils/data/shared.py), for local files.
LOCAL_FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".txt": "text"}


def load_rows(entry: dict[str, Any], split: str) -> Any:
    """One dataset config -> a `datasets.Dataset`, loaded the way Axolotl loads it.

    A single local file is read directly, as Axolotl reads it (its only split is
    "train"), which spares importing Axolotl; anything else goes through
    Axolotl's own loader.
    """
    path = str(entry.get("path"))
    if Path(path).is_file() and not entry.get("data_files"):
        from datasets import load_dataset

        builder = entry.get("ds_type") or next(
            (b for ext, b in LOCAL_FILE_BUILDERS.items() if ext in path), "json")
        try:
            return load_dataset(builder, data_files=path, split=entry.get("split") or "train")
        except Exception as exc:  # a malformed file: say which, not a traceback
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EvalError(f"cannot read {path!r} as {builder}: {message}") from None
    from axolotl.utils.data.shared import load_dataset_with_config
    from axolotl.utils.dict import DictDefault
    from datasets import DatasetDict

    try:
        loaded = load_dataset_with_config(DictDefault(entry), False, streaming=False)
    except ValueError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "split" in message.lower():
            raise EvalError(
                f"dataset {entry.get('path')!r} has no split {entry.get('split', split)!r} "
                f"({message}); pick another --split or pass --dataset FILE"
            ) from None
        offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes")
                      for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
        hint = ("; the Hub is switched off (HF_HUB_OFFLINE), so read a local copy with "
                "--dataset FILE" if offline else "")
        raise EvalError(f"cannot load dataset {entry.get('path')!r}: {message}{hint}") from None
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise EvalError(
                f"dataset {entry.get('path')!r} has splits {sorted(loaded)}, not {split!r}; "
                "pick one of those with --split"
            )
        loaded = loaded[split]
    return loaded


def transform_rows(cfg: dict[str, Any], entry: dict[str, Any], index: int, rows: Any) -> list[dict]:
    """Apply the entry's transform (a registered name or `module.function` loader)."""
    kind = entry.get("type")
    if not kind:
        out = [dict(r) for r in rows]
    else:
        loader = _import_transform(str(kind))
        made = loader(cfg, dataset_idx=index)
        row_fn = made[0] if isinstance(made, tuple) else made
        out = []
        for n, row in enumerate(rows):
            try:
                out.append(row_fn(dict(row)))
            except (KeyError, ValueError) as exc:
                raise EvalError(
                    f"{entry.get('path')!r} row {n}: the {kind!r} transform failed: {exc}"
                ) from None
    if out and "prompt" not in out[0]:
        raise EvalError(
            f"{entry.get('path')!r}: rows have no 'prompt' column after the transform "
            f"(columns: {sorted(out[0])}); set `type:` to a transform that builds prompts"
        )
    return out


def _import_transform(kind: str):
    import importlib

    from ..registry import TRANSFORMS

    short = TRANSFORMS.strip_import_path(kind)
    if short != kind or kind in TRANSFORMS:
        return TRANSFORMS.load(short)
    module_name, _, attr = kind.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EvalError(f"cannot import transform {kind!r}: {exc}") from None


def resolve_chat_template(cfg: dict[str, Any], tokenizer: Any) -> str | None:
    """The chat template Axolotl would install for this config (None when it sets none)."""
    choice = template_choice(cfg)
    if not choice or (choice == "tokenizer_default" and getattr(tokenizer, "chat_template", None)):
        return getattr(tokenizer, "chat_template", None)  # what Axolotl installs (no import needed)
    try:
        return axolotl_chat_template(cfg, choice, tokenizer)
    except ValueError as exc:
        raise EvalError(f"chat_template = {choice!r}: {exc}") from None


def render(messages: Any, tokenizer: Any, chat_template: str | None) -> tuple[str, list[int]]:
    """Prompt text and ids, as TRL's GRPOTrainer tokenizes them."""
    if isinstance(messages, str):  # a plain-text prompt: TRL tokenizes it as is
        return messages, list(tokenizer(text=messages)["input_ids"])
    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False
        )
    except Exception as exc:  # jinja errors: name the template, not a traceback
        raise EvalError(f"the chat template cannot render the prompt ({type(exc).__name__}: {exc})") from None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text, list(ids)


def build_problems(
    cfg: dict[str, Any],
    tokenizer: Any,
    *,
    split: str = "test",
    dataset: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The evaluation prompts for `split`, in dataset order, at most `limit` of them."""
    if limit is not None and limit < 1:
        raise EvalError(f"limit = {limit}: must be at least 1 (or left out for all rows)")
    template = resolve_chat_template(cfg, tokenizer)
    problems: list[Problem] = []
    for i, entry in enumerate(dataset_entries(cfg, split, dataset)):
        rows = load_rows(entry, split)
        if limit is not None:
            rows = rows.select(range(min(len(rows), limit - len(problems))))
        for row in transform_rows(cfg, entry, i, rows):
            messages = row.pop("prompt")
            try:
                text, ids = render(messages, tokenizer, template)
            except EvalError as exc:
                choice = getattr(cfg.get("chat_template"), "value", cfg.get("chat_template"))
                raise EvalError(f"chat_template {choice!r} cannot render {entry.get('path')!r}: {exc}; "
                                "set `chat_template:` to one that fits this tokenizer") from None
            problems.append(Problem(len(problems), messages, text, ids, row))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise EvalError(f"no rows to evaluate for split {split!r}")
    return problems
