"""Stream one dataset entry through its transform and the counter into a length histogram.

Rows are read a batch at a time (`stream.batches`), transformed as Axolotl would, and
counted (`fastcount.Counter`); only the histogram, the row count and the few longest
prompts are kept, so memory stays flat however many rows there are. A progress bar
with rows/s appears on stderr when a dataset takes more than a second or two.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from .counting import _call, _prompt_field, preview_text
from .fastcount import Counter
from .report import LongPrompt
from .sources import DatasetSpec, RowTransform, StatsError
from .stream import NotPlain, batches


@dataclass
class Counted:
    counts: np.ndarray  # counts[n] = number of prompts with n tokens
    longest: list[LongPrompt]


def prompts_of_rows(rows: list[dict], transform: RowTransform, key: str, first: int) -> list[Any]:
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
        except Exception:
            result = _call(transform, row, key, first + offset)  # raises the one-line StatsError
        try:
            out.append(result["prompt"])
        except (KeyError, TypeError):
            out.append(_prompt_field(result, key, first + offset))
    return out


def count_entry(spec: DatasetSpec, dataset_idx: int, counter: Counter, transform: RowTransform, *,
                batch_size: int = 2048, top: int = 5, progress: bool = True) -> Counted:
    """Count every prompt of one dataset entry (see the module docstring)."""
    try:
        return _count(spec, dataset_idx, counter, transform, batch_size, top, progress, direct=True)
    except NotPlain:
        return _count(spec, dataset_idx, counter, transform, batch_size, top, progress, direct=False)


def _count(spec, dataset_idx, counter, transform, batch_size, top, progress, direct) -> Counted:
    from tqdm.auto import tqdm

    counts = np.zeros(0, dtype=np.int64)
    heap: list[tuple[int, int, int, Any]] = []  # (tokens, -row, tiebreak, prompt): the `top` longest
    row = 0
    bar = tqdm(desc=f"Counting prompt tokens ({spec.key})", unit=" rows", unit_scale=True, delay=2.0,
               disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for rows in batches(spec, batch_size, direct=direct):
            prompts = prompts_of_rows(rows, transform, spec.key, row)
            first = row
            lengths = counter.count(prompts, lambda i: f"{spec.key} row {first + i}")
            values = np.fromiter(lengths, dtype=np.int64, count=len(lengths))
            chunk = np.bincount(values)
            if len(chunk) > len(counts):
                counts = np.pad(counts, (0, len(chunk) - len(counts)))
            counts[: len(chunk)] += chunk
            floor = heap[0][0] if len(heap) >= top else -1
            for i in np.flatnonzero(values >= floor) if floor >= 0 else range(len(values)):
                item = (int(values[i]), -(first + int(i)), first + int(i), prompts[i])
                if len(heap) < top:
                    heapq.heappush(heap, item)
                elif item[:2] > heap[0][:2]:
                    heapq.heapreplace(heap, item)
            row += len(rows)
            bar.update(len(rows))
    finally:
        bar.close()
    if row == 0:
        raise StatsError(f"{spec.field('path')} = {spec.path!r}: the dataset has no rows. "
                         "Fix: point it at a non-empty dataset or split.")
    longest = [LongPrompt(dataset_idx, r, n, preview_text(p)) for n, _, r, p in sorted(heap, key=lambda t: (-t[0], t[2]))]
    return Counted(counts, longest)
