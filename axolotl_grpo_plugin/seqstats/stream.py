"""Dataset rows in batches with bounded memory, without `datasets` where it changes nothing.

A local JSON-lines file (`.jsonl`, or `.json` holding one object per line) read as the
`train` split is parsed line by line here: `datasets` (pyarrow's JSON reader) gives the
same rows as long as every row has the same keys and each column holds one scalar type
(strings, ints, floats, bools, nulls), and no string column is all timestamps (pyarrow
reads those as datetimes). Since `datasets` infers types from the whole file, a row that
breaks this (a missing key, an int column with a float, a nested value) raises
`NotPlain`, and the caller starts again with `sources.data.load_rows` (Arrow,
memory-mapped), as it does for every other source.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

from .sources import DatasetSpec, load_rows


SCALARS = (str, int, float, bool, type(None))
INT64 = 2**63
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d")  # what pyarrow might read as a timestamp starts like this


class NotPlain(Exception):
    """The file has a row `datasets` would read differently from `json.loads`."""


def jsonl_path(spec: DatasetSpec) -> Path | None:
    """The file to read directly, or None when `datasets` must read the source."""
    if not isinstance(spec.path, str) or spec.name or spec.data_files or spec.ds_type not in (None, "json"):
        return None
    if spec.split not in (None, "train"):
        return None
    path = Path(spec.path)
    if path.suffix.lower() not in (".jsonl", ".json") or not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    return path if head.startswith(b"{") else None


def _loads():
    try:
        import orjson

        return orjson.loads
    except ImportError:
        return json.loads


class JsonlReader:
    """Batches of row dicts from lines `start..end` (bytes, at line starts) of a JSON-lines file.

    Raises NotPlain at the first row datasets would read differently from the rows before
    it. What it saw (keys, column types, columns that could all be timestamps) is kept so
    that readers of several ranges can be checked against each other (`merge`)."""

    def __init__(self, path: Path, batch_size: int, start: int = 0, end: int | None = None):
        self.path, self.batch_size, self.start, self.end = path, batch_size, start, end
        self.keys: tuple | None = None
        self.types: dict[str, type] = {}
        self.maybe_time: set[str] | None = None  # string columns where every value so far could be a timestamp

    def __iter__(self) -> Iterator[list[dict]]:
        loads = _loads()
        batch: list[dict] = []
        known: tuple | None = None  # the common case: the same keys, in order, with the same value types
        remaining = None if self.end is None else self.end - self.start
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            for line in handle:
                if remaining is not None:
                    if remaining <= 0:
                        break
                    remaining -= len(line)
                if not line.strip():
                    continue
                try:
                    row = loads(line)
                except ValueError:
                    raise NotPlain("a line is not JSON") from None
                if type(row) is not dict:
                    raise NotPlain("a line is not an object")
                shape = (tuple(row), tuple(map(type, row.values())))
                if shape != known:
                    self._check(row)
                    known = shape
                elif int in shape[1] and any(type(v) is int and not -INT64 <= v < INT64 for v in row.values()):
                    raise NotPlain("an integer does not fit in 64 bits")
                if self.maybe_time:
                    self.maybe_time = {k for k in self.maybe_time if row[k] is None or TIMESTAMP.match(row[k])}
                batch.append(row)
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
        if self.end is None:
            self.finish()
        if batch:
            yield batch

    def _check(self, row: dict) -> None:
        if self.keys is None:
            self.keys = tuple(sorted(row))
            self.maybe_time = {k for k, v in row.items() if isinstance(v, str)}
        elif self.keys != tuple(sorted(row)):
            raise NotPlain("rows have different keys")
        for k, v in row.items():
            if not isinstance(v, SCALARS) or (type(v) is int and not -INT64 <= v < INT64):
                raise NotPlain(f"{k} is not a plain scalar")
            if v is None:
                continue
            seen = self.types.setdefault(k, type(v))
            if seen is not type(v):
                raise NotPlain(f"{k} mixes {seen.__name__} and {type(v).__name__}")

    def finish(self) -> None:
        if self.maybe_time:
            raise NotPlain(f"column {min(self.maybe_time)} may be read as timestamps")

    def state(self) -> tuple:
        return self.keys, self.types, self.maybe_time


def merge(states: list[tuple]) -> None:
    """Check readers of consecutive ranges saw one table (raises NotPlain if not)."""
    seen = [s for s in states if s[0] is not None]
    if not seen:
        return
    if any(keys != seen[0][0] for keys, _, _ in seen):
        raise NotPlain("rows have different keys")
    types: dict[str, type] = {}
    for _, found, _ in seen:
        for k, t in found.items():
            if types.setdefault(k, t) is not t:
                raise NotPlain(f"{k} mixes {types[k].__name__} and {t.__name__}")
    maybe = set.intersection(*[set(m or ()) for _, _, m in seen])
    if maybe:
        raise NotPlain(f"column {min(maybe)} may be read as timestamps")


def ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges of a file, each starting at a line start."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
        for k in range(1, parts):
            handle.seek(max(cuts[-1], size * k // parts))
            handle.readline()
            cuts.append(min(size, handle.tell()))
    cuts.append(size)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def iter_jsonl(path: Path, batch_size: int) -> Iterator[list[dict]]:
    """Batches of row dicts of a whole file; raises NotPlain (see `JsonlReader`)."""
    return iter(JsonlReader(path, batch_size))


def iter_dataset(rows, batch_size: int) -> Iterator[list[dict]]:
    """Batches of row dicts from a `datasets.Dataset` (Arrow, read a batch at a time)."""
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        names = list(chunk)
        yield [dict(zip(names, values)) for values in zip(*chunk.values())]


def batches(spec: DatasetSpec, batch_size: int, *, direct: bool = True) -> Iterator[list[dict]]:
    """Row batches of one dataset entry. With `direct`, a plain JSON-lines file is read here
    and may raise `NotPlain` at any batch (the caller then starts again with `direct=False`)."""
    path = jsonl_path(spec) if direct else None
    if path is not None:
        yield from iter_jsonl(path, batch_size)
        return
    yield from iter_dataset(load_rows(spec), batch_size)
