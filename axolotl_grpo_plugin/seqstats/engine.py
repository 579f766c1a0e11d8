"""Stream one dataset entry through its transform and the counter into a length histogram.

Only the histogram, the row count and the few longest prompts are kept, so memory stays flat
however many rows there are.
"""

from __future__ import annotations

import heapq
from dataclasses import replace
from typing import Any

import numpy as np

from .counting import preview_text, prompts_of
from .report import LongPrompt
from .sources import DatasetSpec, RowTransform, StatsError
from .stream import NotPlain, batches


class Lengths:
    """Histogram, row count and the `top` longest prompts of the batches seen."""

    def __init__(self, top: int):
        self.counts = np.zeros(0, dtype=np.int64)
        self.heap: list[tuple[int, int, int, Any]] = []  # (tokens, -row, row, prompt)
        self.rows = 0
        self.top = top

    def add(self, lengths: list[int], prompts: list[Any]) -> None:
        first = self.rows
        values = np.fromiter(lengths, dtype=np.int64, count=len(lengths))
        chunk = np.bincount(values)
        if len(chunk) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(chunk) - len(self.counts)))
        self.counts[: len(chunk)] += chunk
        heap = self.heap
        floor = heap[0][0] if len(heap) >= self.top else -1
        for i in (np.flatnonzero(values >= floor) if floor >= 0 else range(len(values))):
            row = first + int(i)
            item = (int(values[i]), -row, row, prompts[i])
            if len(heap) < self.top:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
        self.rows += len(lengths)


def _run(batch_iter, counter, transform: RowTransform, key: str, top: int, tick) -> Lengths:
    tally = Lengths(top)
    for rows in batch_iter:
        first = tally.rows
        prompts = prompts_of(rows, transform, key, first)
        tally.add(counter.count(prompts, lambda i, first=first: f"{key} row {first + i}"), prompts)
        tick(len(rows))
    return tally


def count_entry(spec: DatasetSpec, dataset_idx: int, counter, transform: RowTransform, *, direct: bool,
                batch_size: int = 2048, top: int = 5, progress: bool = True) -> tuple[np.ndarray, list[LongPrompt]]:
    """(counts[n] = prompts of n tokens, the `top` longest) of one dataset entry; `direct=False`
    reads every source through `datasets`. A bar with rows/s shows after two seconds."""
    from tqdm.auto import tqdm

    from ..system.quiet import terminal

    bar = tqdm(desc=f"Counting prompt tokens ({spec.key})", unit=" rows", unit_scale=True, delay=2.0,
               disable=None if progress else True, leave=False, dynamic_ncols=True, file=terminal())
    before = replace(counter.tally, notes=set(counter.tally.notes)) if direct else None
    try:
        try:
            tally = _run(batches(spec, batch_size, direct=direct), counter, transform, spec.key, top, bar.update)
        except NotPlain:  # counted again from the start, through datasets
            bar.reset()
            counter.tally = before
            tally = _run(batches(spec, batch_size, direct=False), counter, transform, spec.key, top, bar.update)
    finally:
        bar.close()
    if tally.rows == 0:
        raise StatsError(f"{spec.field('path')} = {spec.path!r}: the dataset has no rows. "
                         "Fix: point it at a non-empty dataset or split.")
    ordered = sorted(tally.heap, key=lambda t: (-t[0], t[2]))
    return tally.counts, [LongPrompt(dataset_idx, row, n, preview_text(p)) for n, _, row, p in ordered]
