"""Stream one dataset entry through its transform and the counter into a length histogram.

Rows are read a batch at a time (`stream`), transformed as Axolotl would, and counted
(`fastcount.Counter`); only the histogram, the row count and the few longest prompts
are kept, so memory stays flat however many rows there are. A large JSON-lines file is
split into byte ranges counted by forked worker processes (one per CPU by default),
whose histograms add up; the readers' views of the table are checked against each
other afterwards (`stream.merge`). A progress bar with rows/s appears on stderr when a
dataset takes more than a couple of seconds.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .counting import _call, _prompt_field, preview_text
from .fastcount import Counter
from .report import LongPrompt
from .sources import DatasetSpec, RowTransform, StatsError
from .stream import JsonlReader, NotPlain, batches, jsonl_path, merge, ranges


PARALLEL_BYTES = 16 * 2**20  # below this (~50k GSM8K rows) forking costs more than it saves


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
        except Exception:  # noqa: BLE001 - _call raises the user's one-line error for any failure
            result = _call(transform, row, key, first + offset)  # raises the one-line StatsError
        try:
            out.append(result["prompt"])
        except (KeyError, TypeError):
            out.append(_prompt_field(result, key, first + offset))
    return out


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

    def absorb(self, other: Lengths) -> None:
        """Add a tally of the rows that follow these."""
        size = max(len(self.counts), len(other.counts))
        self.counts = np.pad(self.counts, (0, size - len(self.counts))) + np.pad(other.counts, (0, size - len(other.counts)))
        for tokens, _, row, prompt in other.heap:
            item = (tokens, -(row + self.rows), row + self.rows, prompt)
            if len(self.heap) < self.top:
                heapq.heappush(self.heap, item)
            elif item[:2] > self.heap[0][:2]:
                heapq.heapreplace(self.heap, item)
        self.rows += other.rows


def _run(batch_iter, counter: Counter, transform: RowTransform, key: str, top: int, tick=None) -> Lengths:
    tally = Lengths(top)
    for rows in batch_iter:
        first = tally.rows
        prompts = prompts_of_rows(rows, transform, key, first)
        tally.add(counter.count(prompts, lambda i, first=first: f"{key} row {first + i}"), prompts)
        if tick is not None:
            tick(len(rows))
    return tally


def count_entry(spec: DatasetSpec, dataset_idx: int, counter: Counter, transform: RowTransform, *,
                batch_size: int = 2048, top: int = 5, progress: bool = True, num_proc: int | None = None) -> Counted:
    """Count every prompt of one dataset entry (see the module docstring)."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=f"Counting prompt tokens ({spec.key})", unit=" rows", unit_scale=True, delay=2.0,
               disable=not progress, leave=False, dynamic_ncols=True)
    try:
        path = jsonl_path(spec)
        procs = _processes(path, num_proc)
        try:
            if procs > 1:
                tally = _parallel(path, procs, counter, transform, spec.key, batch_size, top, bar)
            else:
                tally = _run(batches(spec, batch_size), counter, transform, spec.key, top, bar.update)
        except NotPlain:
            bar.reset()
            tally = _run(batches(spec, batch_size, direct=False), counter, transform, spec.key, top, bar.update)
    finally:
        bar.close()
    if tally.rows == 0:
        raise StatsError(f"{spec.field('path')} = {spec.path!r}: the dataset has no rows. "
                         "Fix: point it at a non-empty dataset or split.")
    ordered = sorted(tally.heap, key=lambda t: (-t[0], t[2]))
    return Counted(tally.counts, [LongPrompt(dataset_idx, row, n, preview_text(p)) for n, _, row, p in ordered])


def _processes(path, requested: int | None) -> int:
    if path is None or "fork" not in _start_methods():
        return 1
    if requested:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if path.stat().st_size < PARALLEL_BYTES else max(1, min(cpus, 8))


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


def _parallel(path, procs: int, counter: Counter, transform: RowTransform, key: str, batch_size: int,
              top: int, bar) -> Lengths:
    """Count byte ranges of a JSON-lines file in forked workers; tallies added in file order.

    A worker that meets a bad row stops; the file is then counted again in this process,
    so the error names the row by its number in the whole file."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    done = context.Value("q", 0)
    parts = ranges(path, procs)

    def work(start, end, sink):
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the parent's Rust thread pool did not survive the fork
        reader = JsonlReader(path, batch_size, start, end)

        def tick(n):
            with done.get_lock():
                done.value += n

        try:
            tally = _run(reader, counter, transform, key, top, tick)
            sink.send(("ok", tally.counts, tally.heap, tally.rows, reader.state(), counter.tally))
        except NotPlain as exc:
            sink.send(("notplain", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which recounts to raise it
            sink.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            sink.close()

    workers, pipes = [], []
    for start, end in parts:
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(target=work, args=(start, end, send), daemon=True)
        proc.start()
        send.close()
        workers.append(proc)
        pipes.append(receive)
    results: list[Any] = [None] * len(pipes)
    pending = set(range(len(pipes)))
    seen = 0
    while pending:
        for i in list(pending):
            if pipes[i].poll(0.2):
                try:
                    results[i] = pipes[i].recv()
                except EOFError:
                    results[i] = ("error", "a worker died")
                pending.discard(i)
        bar.update(done.value - seen)
        seen = done.value
    for proc in workers:
        proc.join()
    if any(r[0] == "notplain" for r in results):
        raise NotPlain(next(r[1] for r in results if r[0] == "notplain"))
    if any(r[0] != "ok" for r in results):  # count here to raise the error with its row number
        return _run(JsonlReader(path, batch_size), counter, transform, key, top)
    merge([r[4] for r in results])
    total = Lengths(top)
    for _, counts, heap, rows, _, worker_tally in results:
        part = Lengths(top)
        part.counts, part.heap, part.rows = counts, heap, rows
        total.absorb(part)
        counter.tally.split += worker_tally.split
        counter.tally.whole += worker_tally.whole
        counter.tally.plain += worker_tally.plain
        counter.tally.notes |= worker_tally.notes
    return total
