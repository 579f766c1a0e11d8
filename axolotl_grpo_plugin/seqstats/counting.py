"""Prompts as TRL 1.9's GRPOTrainer builds them, and the transformers counter (`--method reference`).

TRL (`GRPOTrainer._tokenize_prompts`) renders a conversational prompt with
`apply_chat_template(add_generation_prompt=True)` and tokenizes the text with
`add_special_tokens=False` (the template already holds BOS where a model wants
one); a plain-string prompt is tokenized with the tokenizer's defaults. The
token ids go to vLLM as they are. `TransformersCounter` does exactly that with the
transformers tokenizer, a batch at a time; `fastcount.Counter` gives the same counts
without transformers.
"""

from __future__ import annotations

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
    fn, kwargs = transform.fn, transform.fn_kwargs
    out = []
    for offset, row in enumerate(rows):
        try:
            result = fn(row, **kwargs)
        except Exception:  # noqa: BLE001 - _call raises the user's one-line error for any failure
            result = _call(transform, row, key, first + offset)
        try:
            out.append(result["prompt"])
        except (KeyError, TypeError):
            out.append(_prompt_field(result, key, first + offset))
    return out


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


class TransformersCounter:
    """Counts a batch of prompts with the transformers tokenizer itself (the reference)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def count(self, prompts: list[Any], where=lambda i: f"row {i}") -> list[int]:
        chat_at = [i for i, p in enumerate(prompts) if is_conversational(p)]
        plain_at = [i for i, p in enumerate(prompts) if not is_conversational(p)]
        check_plain(prompts, plain_at, where)
        lengths = [0] * len(prompts)
        if chat_at:
            try:  # no extra template kwargs: Axolotl 0.19 does not pass `trl.chat_template_kwargs` to GRPO
                texts = self.tokenizer.apply_chat_template([prompts[i] for i in chat_at], add_generation_prompt=True,
                                                           tokenize=False)
            except Exception as exc:  # noqa: BLE001 - any template failure becomes the one-line error
                raise template_failed(where(chat_at[0]), exc) from None
            ids = self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
            lengths = _put(lengths, chat_at, ids)
        if plain_at:
            ids = self.tokenizer([prompts[i] for i in plain_at], return_attention_mask=False)["input_ids"]
            lengths = _put(lengths, plain_at, ids)
        return lengths


def _put(lengths: list[int], at: list[int], ids: list) -> list[int]:
    for i, row_ids in zip(at, ids):
        lengths[i] = len(row_ids)
    return lengths


def check_plain(prompts: list[Any], plain_at: list[int], where) -> None:
    """A prompt that is not a chat is text (TRL tokenizes it as it is)."""
    for i in plain_at:
        if not isinstance(prompts[i], str):
            raise StatsError(f"{where(i)}: prompt is {type(prompts[i]).__name__}, neither text nor a list of "
                             "{role, content} messages. Fix: check the transform.")


def template_failed(where: str, exc: Exception) -> StatsError:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return StatsError(f"{where}: the chat template failed ({type(exc).__name__}: {text}). "
                      "Fix: set `chat_template:` (e.g. chatml, qwen_25, llama3) or --chat-template.")


def preview_text(prompt: Any) -> str:
    """The end of a prompt's last message on one line."""
    text = prompt[-1].get("content", "") if is_conversational(prompt) else str(prompt)
    if not isinstance(text, str):
        text = str(text)
    text = " ".join(text.split())
    if len(text) > PREVIEW_CHARS:
        text = "..." + text[-(PREVIEW_CHARS - 3):]
    return text
