"""Count prompt tokens exactly as TRL 1.9's GRPOTrainer produces them, in batches.

TRL (`GRPOTrainer._tokenize_prompts`) renders a conversational prompt with
`apply_chat_template(add_generation_prompt=True)` and tokenizes the text with
`add_special_tokens=False` (the template already holds BOS where a model wants
one); a plain-string prompt is tokenized with the tokenizer's defaults. The
token ids go to vLLM as they are. We do the same, but one batch at a time:
render a batch of prompts, tokenize them in one fast-tokenizer call, and keep
only the lengths, so a million prompts never sit in memory as token lists.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .report import LongPrompt
from .sources import RowTransform, StatsError


LENGTH_COLUMN = "prompt_tokens"
PREVIEW_CHARS = 90


def is_conversational(prompt: Any) -> bool:
    """TRL's test (`trl.data_utils.is_conversational`) for one prompt: a list of role/content messages."""
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def prompts_of(batch: dict[str, list], transform: RowTransform, dataset_key: str,
               first_index: int) -> list[Any]:
    """The `prompt` of each row after the dataset transform."""
    if transform.fn is None:
        if "prompt" not in batch:
            raise StatsError(f"{dataset_key}: no `prompt` column (columns: {sorted(batch)}) and no transform. "
                             "Fix: name a transform (--transform gsm8k or `type:`), or use a dataset with a prompt column.")
        return list(batch["prompt"])
    if transform.batched:
        out = _call(transform, batch, dataset_key, first_index)
        return list(_prompt_field(out, dataset_key, first_index))
    keys = list(batch)
    prompts = []
    for offset, values in enumerate(zip(*batch.values())):
        out = _call(transform, dict(zip(keys, values)), dataset_key, first_index + offset)
        prompts.append(_prompt_field(out, dataset_key, first_index + offset))
    return prompts


def _call(transform: RowTransform, data: dict, dataset_key: str, index: int) -> Any:
    try:
        return transform.fn(data, **transform.fn_kwargs)
    except StatsError:
        raise
    except Exception as exc:
        raise StatsError(f"{dataset_key} row {index}: the transform failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}). "
                         "Fix: point the dataset at rows of the shape the transform expects.") from None


def _prompt_field(out: Any, dataset_key: str, index: int) -> Any:
    if not isinstance(out, dict) or "prompt" not in out:
        raise StatsError(f"{dataset_key} row {index}: the transform returned no `prompt` "
                         "(GRPO reads prompts from that field). Fix: make the transform return {'prompt': ...}.")
    return out["prompt"]


class PromptLengths:
    """The batched `datasets.map` function: raw rows in, one `prompt_tokens` length per row out."""

    def __init__(self, tokenizer, transform: RowTransform, dataset_key: str):
        self.tokenizer = tokenizer
        self.transform = transform
        self.dataset_key = dataset_key

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list[int]]:
        prompts = prompts_of(batch, self.transform, self.dataset_key, indices[0] if indices else 0)
        return {LENGTH_COLUMN: count_tokens(self.tokenizer, prompts, self.dataset_key, indices)}


def count_tokens(tokenizer, prompts: list[Any], dataset_key: str = "dataset",
                 indices: list[int] | None = None) -> list[int]:
    """Token counts of prompts as the trainer sends them to the model."""
    chat = [i for i, p in enumerate(prompts) if is_conversational(p)]
    plain = [i for i, p in enumerate(prompts) if not is_conversational(p)]
    lengths = [0] * len(prompts)
    if chat:
        texts = render(tokenizer, [prompts[i] for i in chat], dataset_key, indices)
        ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        for i, row_ids in zip(chat, ids):
            lengths[i] = len(row_ids)
    if plain:
        bad = [i for i in plain if not isinstance(prompts[i], str)]
        if bad:
            where = indices[bad[0]] if indices else bad[0]
            raise StatsError(f"{dataset_key} row {where}: prompt is {type(prompts[bad[0]]).__name__}, "
                             "neither text nor a list of {role, content} messages. Fix: check the transform.")
        ids = tokenizer([prompts[i] for i in plain], return_attention_mask=False)["input_ids"]
        for i, row_ids in zip(plain, ids):
            lengths[i] = len(row_ids)
    return lengths


def render(tokenizer, conversations: list[list[dict]], dataset_key: str = "dataset",
           indices: list[int] | None = None) -> list[str]:
    """Render chat prompts with the generation prompt, as TRL does (no extra template kwargs:
    Axolotl 0.19 does not pass `trl.chat_template_kwargs` to the synchronous GRPO trainer)."""
    try:
        return tokenizer.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
    except Exception as exc:
        where = f" rows {indices[0]}..{indices[-1]}" if indices else ""
        raise StatsError(f"{dataset_key}{where}: the chat template failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}). "
                         "Fix: set `chat_template:` (e.g. chatml, qwen_25, llama3) or --chat-template.") from None


@dataclass
class Counted:
    counts: np.ndarray  # counts[n] = number of prompts with n tokens
    longest: list[tuple[int, int]]  # (tokens, row), longest first


def count_dataset(rows, tokenizer, transform: RowTransform, dataset_key: str, *,
                  num_proc: int | None = None, batch_size: int = 1000, top: int = 5) -> Counted:
    """Run `PromptLengths` over a `datasets.Dataset` and fold the lengths into a histogram."""

    num_proc = choose_num_proc(len(rows), num_proc)
    # datasets turns off the tokenizer's own threads whenever num_proc is given, even 1
    lengths = rows.map(
        PromptLengths(tokenizer, transform, dataset_key),
        batched=True, batch_size=batch_size, with_indices=True,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=rows.column_names, keep_in_memory=True, load_from_cache_file=False,
        new_fingerprint=f"seqstats-{os.getpid()}-{id(rows)}",
        desc=f"Counting prompt tokens ({dataset_key})",
    )
    return fold(lengths.data.column(LENGTH_COLUMN), top)


def fold(column, top: int) -> Counted:
    """Histogram and top-k of a lengths column, chunk by chunk (bounded memory)."""
    counts = np.zeros(0, dtype=np.int64)
    heap: list[tuple[int, int]] = []
    offset = 0
    for chunk in column.chunks:
        values = chunk.to_numpy(zero_copy_only=False).astype(np.int64)
        chunk_counts = np.bincount(values)
        if len(chunk_counts) > len(counts):
            counts = np.pad(counts, (0, len(chunk_counts) - len(counts)))
        counts[: len(chunk_counts)] += chunk_counts
        k = min(top, len(values))
        if k:
            best = np.argpartition(values, -k)[-k:]
            for i in best:
                item = (int(values[i]), -(offset + int(i)))  # ties: earlier row first
                if len(heap) < top:
                    heapq.heappush(heap, item)
                else:
                    heapq.heappushpop(heap, item)
        offset += len(values)
    longest = [(tokens, -neg_row) for tokens, neg_row in sorted(heap, reverse=True)]
    return Counted(counts, longest)


def choose_num_proc(rows: int, requested: int | None) -> int:
    """Processes for `datasets.map`: worth it only when there are enough rows to amortize forking."""
    if requested:
        return max(1, min(requested, rows))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if rows < 50_000 else max(1, min(cpus, 8))


def preview(tokenizer, rows, transform: RowTransform, dataset_key: str, dataset_idx: int,
            longest: list[tuple[int, int]]) -> list[LongPrompt]:
    """The longest prompts with the end of their last message (where rows differ; the
    start is usually the shared instruction), for a human to recognise."""
    found = []
    for tokens, row in longest:
        record = rows[row]
        prompt = prompts_of({k: [v] for k, v in record.items()}, transform, dataset_key, row)[0]
        found.append(LongPrompt(dataset_idx, row, tokens, preview_text(prompt)))
    return found


def preview_text(prompt: Any) -> str:
    """The end of a prompt's last message on one line."""
    text = prompt[-1].get("content", "") if is_conversational(prompt) else str(prompt)
    if not isinstance(text, str):
        text = str(text)
    text = " ".join(text.split())
    if len(text) > PREVIEW_CHARS:
        text = "..." + text[-(PREVIEW_CHARS - 3):]
    return text
