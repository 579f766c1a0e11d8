"""Evaluation prompts built exactly as training builds them.

The rows come from the config's datasets through the config's transform (the
same registry Axolotl's RL loader reaches), and are rendered with the config's
chat template the way TRL's GRPOTrainer renders them: `apply_chat_template(...,
add_generation_prompt=True)`, tokenized without extra special tokens.

Which rows: `split="train"` reads `datasets:`; `split="test"` reads
`test_datasets:` when the config has them, else the `test` split of each Hub
dataset or `save_to_disk` DatasetDict directory in `datasets:`; any other split
name is read from those the same way. A local file has a single split, so it
needs `test_datasets:` or an explicit `dataset=FILE`. Loading itself is shared
with the stats tool (`axolotl_grpo_plugin.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import names
from ..config.run import Run
from ..errors import PluginError
from ..sources import data as data_sources
from ..sources.chat_template import resolve_chat_template as shared_template
from ..sources.data import DatasetSpec, raised_as
from ..sources.transforms import load_transform


class EvalError(PluginError):
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
    with raised_as(EvalError):
        return names.load_config(config)


def named(argument: str, flags: bool) -> str:
    """An argument as errors name it: the CLI's flag (`--correct-reward`) when the user typed that."""
    return f"--{argument.replace('_', '-')}" if flags else argument


def dataset_entries(run: Run, split: str, dataset: str | None = None, key: str = "dataset") -> list[DatasetSpec]:
    """The dataset entries to read for `split` (see the module docstring); `key`: what the user
    typed to give `dataset` (`--dataset`), for errors."""
    with raised_as(EvalError):
        test = data_sources.dataset_specs(run.test_datasets, "test_datasets") if run.test_datasets else []
        if dataset is not None:
            return [_override(run, split, dataset, test, key)]
        if split == "test" and test:
            return test
        train = data_sources.dataset_specs(run.datasets)
    if split == "train":
        return train
    for spec in train:
        if isinstance(spec.path, str) and Path(spec.path).is_file():
            raise EvalError(
                f"{spec.key}.path = {spec.path!r} is a local file with a single split, "
                f"so there is no {split!r} split; add `test_datasets:` to the config "
                "or name a held-out file (--dataset FILE, or grpo_plugin.eval_at_end.dataset)"
            )
        spec.split = split
    return train


def _override(run: Run, split: str, dataset: str, test: list[DatasetSpec], key: str) -> DatasetSpec:
    """`dataset=FILE_OR_ID`, transformed with the `type` of the entries it stands in for."""
    if split == "test" and test:
        kind = test[0].transform
    else:
        first = run.datasets[0] if run.datasets else None
        kind = first.get("type") if hasattr(first, "get") else None
    spec = DatasetSpec(path=str(dataset), transform=kind, key=key)
    if not Path(dataset).exists():
        spec.split = split
    return spec


def load_rows(spec: DatasetSpec, split: str) -> Any:
    """One dataset entry -> a `datasets.Dataset`, loaded the way Axolotl loads it; a
    `save_to_disk` Dataset (no named splits) is not taken for a held-out split."""
    with raised_as(EvalError):
        return data_sources.load_rows(spec, split, exact_split=True)


def head_rows(spec: DatasetSpec, split: str, count: int) -> dict:
    """The entry's first `count` rows as columns (sources/data.head_rows: a small JSON Lines file
    without importing `datasets`)."""
    with raised_as(EvalError):
        return data_sources.head_rows(spec, count, split, exact_split=True)


def transform_rows(cfg: dict[str, Any], spec: DatasetSpec, index: int, rows: Any,
                   tokenizer: Any = None) -> list[dict]:
    """Apply the entry's transform with the shared loader (Axolotl's semantics: `(fn, map_kwargs)`,
    `batched`, the `tokenizer` argument, the dpo-strategy fallback)."""
    with raised_as(EvalError):
        transform = load_transform(spec, cfg, index, tokenizer)
        columns = rows if isinstance(rows, dict) else rows.to_dict() if hasattr(rows, "to_dict") else _columns(rows)
        out = transform.rows(columns)
    if out and "prompt" not in out[0]:
        raise EvalError(
            f"{spec.path!r}: rows have no 'prompt' column after the transform "
            f"(columns: {sorted(out[0])}); set `type:` to a transform that builds prompts"
        )
    return out


def _columns(rows: list[dict]) -> dict[str, list]:
    keys = list(rows[0]) if rows else []
    return {k: [r.get(k) for r in rows] for k in keys}


def resolve_chat_template(run: Run, tokenizer: Any) -> str | None:
    """The chat template Axolotl would install for this config (None when it sets none)."""
    with raised_as(EvalError):
        return shared_template(run, tokenizer)[1]


def render(messages: Any, tokenizer: Any, chat_template: str | None, tools: list | None = None) -> tuple[str, list[int]]:
    """Prompt text and ids, as TRL's GRPOTrainer tokenizes them (with the run's tools, if any)."""
    if isinstance(messages, str):  # a plain-text prompt: TRL tokenizes it as is
        return messages, list(tokenizer(text=messages)["input_ids"])
    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False,
            **({"tools": tools} if tools else {}),
        )
    except Exception as exc:  # jinja errors: name the template, not a traceback
        raise EvalError(f"the chat template cannot render the prompt ({type(exc).__name__}: {exc})") from None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text, list(ids)


def build_problems(
    cfg: dict[str, Any],
    tokenizer: Any,
    *,
    run: Run,
    split: str = "test",
    dataset: str | None = None,
    limit: int | None = None,
    tools: list | None = None,
    flags: bool = False,
) -> list[Problem]:
    """The evaluation prompts for `split`, in dataset order, at most `limit` of them; `tools`
    (the run's, contained) are rendered into each prompt as TRL renders them. `run`: the
    config's Run (`cfg` itself is what the dataset transforms read, as Axolotl gives it to them).
    `flags`: errors name the CLI's flags (`--limit`)."""
    if limit is not None and limit < 1:
        raise EvalError(f"{named('limit', flags)} = {limit}: must be at least 1 (or left out for all rows)")
    template = resolve_chat_template(run, tokenizer)
    problems: list[Problem] = []
    for i, spec in enumerate(dataset_entries(run, split, dataset, named("dataset", flags))):
        rows = load_rows(spec, split)
        if limit is not None:
            rows = rows.select(range(min(len(rows), limit - len(problems))))
        for row in transform_rows(cfg, spec, i, rows, tokenizer):
            messages = row.pop("prompt")
            try:
                text, ids = render(messages, tokenizer, template, tools)
            except EvalError as exc:
                choice = getattr(run.chat_template, "value", run.chat_template)
                raise EvalError(f"chat_template {choice!r} cannot render {spec.path!r}: {exc}; "
                                "set `chat_template:` to one that fits this tokenizer") from None
            problems.append(Problem(len(problems), messages, text, ids, row))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise EvalError(f"no rows to evaluate for split {split!r}")
    return problems
