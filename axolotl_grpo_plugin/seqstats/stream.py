"""Dataset rows in batches with bounded memory, without `datasets` where it changes nothing.

A local JSON-lines file read as the `train` split is parsed here while `datasets` (pyarrow's
JSON reader, which infers types from the whole file) would give the same rows; the first row
that breaks this raises `NotPlain`, and the caller starts again through `datasets`, as it does
for every other source.
"""

from __future__ import annotations

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
    if (not isinstance(spec.path, str) or spec.name or spec.data_files or spec.ds_type not in (None, "json")
            or spec.split not in (None, "train")):
        return None
    path = Path(spec.path)
    if path.suffix.lower() not in (".jsonl", ".json") or not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    return path if head.startswith(b"{") else None


def iter_jsonl(path: Path, batch_size: int) -> Iterator[list[dict]]:
    """Batches of a whole file's rows; raises NotPlain at the first row `datasets` would read
    differently (a missing key, a column mixing types, a nested value, or at the end a timestamp column)."""
    try:
        from orjson import loads
    except ImportError:
        loads = json.loads
    keys, types, maybe_time, known, batch = None, {}, None, None, []
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = loads(line)
            except ValueError:
                raise NotPlain("a line is not JSON") from None
            if type(row) is not dict:
                raise NotPlain("a line is not an object")
            shape = (tuple(row), tuple(map(type, row.values())))  # the common case: as the row before
            if shape != known:
                if keys is None:
                    keys, maybe_time = sorted(row), {k for k, v in row.items() if isinstance(v, str)}
                elif keys != sorted(row):
                    raise NotPlain("rows have different keys")
                for k, v in row.items():
                    if not isinstance(v, SCALARS):
                        raise NotPlain(f"{k} is not a plain scalar")
                    if v is not None and types.setdefault(k, type(v)) is not type(v):
                        raise NotPlain(f"{k} mixes {types[k].__name__} and {type(v).__name__}")
                known = shape
            if int in shape[1] and any(type(v) is int and not -INT64 <= v < INT64 for v in row.values()):
                raise NotPlain("an integer does not fit in 64 bits")
            if maybe_time:
                maybe_time = {k for k in maybe_time if row[k] is None or TIMESTAMP.match(row[k])}
            batch.append(row)
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if maybe_time:
        raise NotPlain(f"column {min(maybe_time)} may be read as timestamps")
    if batch:
        yield batch


def batches(spec: DatasetSpec, batch_size: int, *, direct: bool = True) -> Iterator[list[dict]]:
    """Row batches of one dataset entry; with `direct`, a plain JSON-lines file may raise `NotPlain`."""
    path = jsonl_path(spec) if direct else None
    if path is not None:
        yield from iter_jsonl(path, batch_size)
        return
    rows = load_rows(spec)  # Arrow, memory-mapped: read a batch at a time
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        yield [dict(zip(chunk, values)) for values in zip(*chunk.values())]
