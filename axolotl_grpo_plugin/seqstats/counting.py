"""Prompts as TRL 1.9's GRPOTrainer builds them, and the transformers counter (`--method reference`).

TRL renders a conversational prompt with `apply_chat_template(add_generation_prompt=True)` and
tokenizes the text with `add_special_tokens=False` (the template already holds BOS where a model
wants one); a plain-string prompt is tokenized with the tokenizer's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .sources import RowTransform, StatsError


PREVIEW_CHARS = 90


def is_conversational(prompt: Any) -> bool:
    """TRL's test (`trl.data_utils.is_conversational`) for one prompt: a list of role/content messages."""
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def prompts_of(rows: list[dict], transform: RowTransform, key: str, first: int) -> list[Any]:
    """Each row's `prompt` after the dataset transform (per row, or batched), as Axolotl maps it."""
    if transform.fn is None:
        try:
            return [row["prompt"] for row in rows]
        except KeyError:
            raise StatsError(f"{key}: no `prompt` column (columns: {sorted(rows[0])}) and no transform. "
                             "Fix: name a transform (--transform gsm8k or `type:`), or use a dataset with a prompt column.") from None
    if transform.batched:
        batch = {k: [row[k] for row in rows] for k in rows[0]}
        return list(_prompt_field(_call(transform, batch, key, first), key, first))
    return [_prompt_field(_call(transform, row, key, first + k), key, first + k) for k, row in enumerate(rows)]


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
    if not isinstance(out, Mapping) or "prompt" not in out:
        raise StatsError(f"{dataset_key} row {index}: the transform returned no `prompt` "
                         "(GRPO reads prompts from that field). Fix: make the transform return {'prompt': ...}.")
    return out["prompt"]


def split_prompts(prompts: list[Any], where) -> tuple[list[int], list[int]]:
    """Where the chat prompts and the plain-text ones are (TRL tokenizes text as it is)."""
    chat_at, plain_at = [], []
    for i, prompt in enumerate(prompts):
        if is_conversational(prompt):
            chat_at.append(i)
        elif isinstance(prompt, str):
            plain_at.append(i)
        else:
            raise StatsError(f"{where(i)}: prompt is {type(prompt).__name__}, neither text nor a list of "
                             "{role, content} messages. Fix: check the transform.")
    return chat_at, plain_at


def template_failed(where: str, exc: Exception) -> StatsError:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return StatsError(f"{where}: the chat template failed ({type(exc).__name__}: {text}). "
                      "Fix: set `chat_template:` (e.g. chatml, qwen_25, llama3) or --chat-template.")


class TransformersCounter:
    """Counts a batch of prompts with the transformers tokenizer itself (the reference)."""

    def __init__(self, tokenizer, tools: list[dict] | None = None):
        self.tokenizer, self.tools = tokenizer, tools

    def count(self, prompts: list[Any], where=lambda i: f"row {i}") -> list[int]:
        chat_at, plain_at = split_prompts(prompts, where)
        chat = []
        if chat_at:
            try:  # no extra template kwargs: Axolotl 0.19 does not pass `trl.chat_template_kwargs` to GRPO
                chat = self.tokenizer.apply_chat_template([prompts[i] for i in chat_at], add_generation_prompt=True,
                                                          tokenize=False, **({"tools": self.tools} if self.tools else {}))
            except Exception as exc:  # noqa: BLE001 - any template failure becomes the one-line error
                raise template_failed(where(chat_at[0]), exc) from None
        lengths = [0] * len(prompts)
        for at, texts, special in ((chat_at, chat, False), (plain_at, [prompts[i] for i in plain_at], True)):
            if at:
                ids = self.tokenizer(texts, add_special_tokens=special, return_attention_mask=False)["input_ids"]
                for i, row_ids in zip(at, ids):
                    lengths[i] = len(row_ids)
        return lengths


def preview_text(prompt: Any) -> str:
    """The end of a prompt's last message on one line."""
    text = prompt[-1].get("content", "") if is_conversational(prompt) else str(prompt)
    text = " ".join(str(text).split())
    return "..." + text[-(PREVIEW_CHARS - 3):] if len(text) > PREVIEW_CHARS else text
