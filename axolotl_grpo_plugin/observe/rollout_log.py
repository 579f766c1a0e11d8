"""The rollout log: every scored completion as one JSON line, crash-safe and size-bounded.

Layout in the run's output_dir:

    rollouts.jsonl            the live file, appended to each generation step
    rollouts.1.jsonl.gz, ...  earlier parts, gzipped when the live file passed the
                              size limit (higher number = later part)

Crash safety: each step is written as whole lines, then flushed and fsync'd, so
a SIGKILL loses at most the step being written; the reader skips a torn last
line, so the files always parse. Rotation first renames the live file to
rollouts.N.jsonl, then gzips it to a temp file that is renamed into place: a kill
at any point leaves each line in exactly one readable part. A write failure is
reported once and logging stops; training never sees an exception from here.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path


LOG = logging.getLogger("axolotl_grpo_plugin")

LIVE_NAME = "rollouts.jsonl"
SUPERSEDED_NAME = "rollouts.superseded.jsonl"  # not a part: readers never see it
_PART = re.compile(r"^rollouts\.(\d+)\.jsonl(\.gz)?$")


def _json_safe(value):
    """NaN/inf are not JSON; write them as null so every line parses everywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class RolloutLogWriter:
    """Appends records to OUTPUT_DIR/rollouts.jsonl; rotates to gzip parts by size."""

    def __init__(self, output_dir: str | os.PathLike, max_mb: float = 256.0):
        self.dir = Path(output_dir)
        self.path = self.dir / LIVE_NAME
        self.max_bytes = int(max_mb * 1024 * 1024) if max_mb and max_mb > 0 else 0
        self.failed = False
        self._file = None

    def write_step(self, records: Iterable[dict]) -> bool:
        """Append one step's records as whole lines and make them durable. False after a failure."""
        if self.failed:
            return False
        try:
            payload = "".join(
                json.dumps(_json_safe(r), ensure_ascii=False, allow_nan=False) + "\n" for r in records
            ).encode("utf-8")
            if self._file is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")
                self._repair_torn_tail()
            self._file.write(payload)
            self._file.flush()
            os.fsync(self._file.fileno())
            if self.max_bytes and self._file.tell() >= self.max_bytes:
                self._rotate()
            return True
        except Exception as exc:  # disk full, permissions, unserialisable value...
            self._fail(exc)
            return False

    def _repair_torn_tail(self) -> None:
        """A resumed run appends after a line torn by a kill: start on a fresh line."""
        size = self._file.seek(0, os.SEEK_END)
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")

    def _rotate(self) -> None:
        """Move the live file aside as the next part, gzip it (temp file, rename), start anew."""
        self._file.close()
        self._file = None
        number = max(part_numbers(self.dir), default=0) + 1
        staged = self.dir / f"rollouts.{number}.jsonl"
        os.replace(self.path, staged)
        target = staged.with_name(staged.name + ".gz")
        tmp = target.with_name(target.name + ".tmp")
        with open(staged, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, target)
        os.remove(staged)

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        LOG.warning(
            "axolotl_grpo_plugin: cannot write the rollout log %s (%s: %s); training "
            "continues without it. Fix: free disk space / check permissions of output_dir, "
            "or set `grpo_plugin.rollout_log: false`.",
            self.path, type(exc).__name__, exc,
        )
        self.close()

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        except Exception:
            pass
        self._file = None


def part_numbers(output_dir: Path) -> list[int]:
    return sorted({int(m.group(1)) for p in Path(output_dir).glob("rollouts.*.jsonl*")
                   if (m := _PART.match(p.name))})


def log_files(output_dir: str | os.PathLike) -> list[Path]:
    """The log's files in write order: parts by number (gzipped, or staged if the gzip never
    finished), then the live file."""
    output_dir = Path(output_dir)
    files = []
    for n in part_numbers(output_dir):
        gz = output_dir / f"rollouts.{n}.jsonl.gz"
        files.append(gz if gz.exists() else output_dir / f"rollouts.{n}.jsonl")
    if (output_dir / LIVE_NAME).exists():
        files.append(output_dir / LIVE_NAME)
    return files


def _lines(path: Path) -> Iterator[bytes]:
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            yield from f
        return
    try:
        with gzip.open(path, "rb") as f:
            yield from f
    except (EOFError, OSError, zlib.error):  # torn part: keep what was readable
        return


def read_rollouts(output_dir: str | os.PathLike) -> Iterator[dict]:
    """Every complete record, in order. Torn or corrupt lines are skipped, never raised."""
    for path in log_files(output_dir):
        for line in _lines(path):
            if not line.endswith(b"\n"):
                continue  # torn final line of a killed run
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def supersede_after(output_dir: str | os.PathLike, step: int) -> int:
    """A run resumed from checkpoint-`step`: move every record logged after that step (by the
    run that crashed) out of the log into rollouts.superseded.jsonl, each marked with
    `superseded_by_resume_at`, so the log holds every step once and the report does not count
    the replaced steps twice. Each rewritten file is replaced atomically; returns how many
    records were moved."""
    output_dir = Path(output_dir)
    moved = 0
    aside = output_dir / SUPERSEDED_NAME
    for path in log_files(output_dir):
        keep: list[bytes] = []
        later: list[dict] = []
        for line in _lines(path):
            if not line.endswith(b"\n"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step:
                later.append({**record, "superseded_by_resume_at": step})
            else:
                keep.append(line)
        if not later:
            continue
        with open(aside, "ab") as f:  # first aside, then the rewrite: a kill loses nothing
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in later).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        tmp = path.with_name(path.name + ".tmp")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(tmp, "wb") as f:
            f.write(b"".join(keep))
        os.replace(tmp, path)
        moved += len(later)
    return moved
