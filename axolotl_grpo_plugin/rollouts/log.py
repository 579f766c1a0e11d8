"""The rollout log: every scored completion as one JSON line, crash-safe and size-bounded.

Layout in the run's output_dir:

    rollouts.jsonl            the live file, appended to each generation step
    rollouts.1.jsonl.gz, ...  earlier parts, gzipped when the live file passed the
                              size limit (higher number = later part)

Crash safety: each step is written as whole lines, then flushed and fsync'd, so
a SIGKILL loses at most the step being written; the reader skips a torn last
line, so the files always parse. Rotation first renames the live file to
rollouts.N.jsonl, then gzips it to a temp file that is renamed into place: a kill
at any point leaves each line in exactly one readable part.

A failed write (disk full, a rename race) drops that step's records, cuts the file back to
its last whole line, says so, and is retried at the next step; the first record written
after a gap carries `"dropped": N` (records lost since the previous line) and close()
logs a summary. Training never sees an exception from here. No write follows a symlink
planted in output_dir (system/safe_files.py).
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

from ..config.args import plugin_default
from ..system.safe_files import open_nofollow, replacing


LOG = logging.getLogger("axolotl_grpo_plugin")

LIVE_NAME = "rollouts.jsonl"
# The records beside the rollouts, told apart by one field: `{"type": KIND, ...}`.
KIND_FIELD = "type"
DOCTOR = "doctor"  # a failure signature the run doctor found (observe/doctor.py)
STEP_TIME = "step_time"  # one step's time parts (observe/step_time.py)
VLLM_RESTART = "vllm_restart"  # a restart of the autostarted vLLM server (vllm/restart.py)
EVAL = "eval"  # one periodic evaluation (evaluate/periodic.py)
SAMPLING = "sampling"  # one step's dynamic-sampling rounds and groups (training/dynamic_sampling.py)
RECORD_KINDS = (DOCTOR, STEP_TIME, VLLM_RESTART, EVAL, SAMPLING)
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


def _utf8_line(line: str) -> bytes:
    """A lone surrogate (from model text) has no UTF-8 form: escape the line as ASCII JSON."""
    try:
        return (line + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(json.loads(line), ensure_ascii=True) + "\n").encode("ascii")


class RolloutLogWriter:
    """Appends records to OUTPUT_DIR/rollouts.jsonl; rotates to gzip parts by size."""

    def __init__(self, output_dir: str | os.PathLike, max_mb: float = plugin_default("rollout_log_max_mb")):
        self.dir = Path(output_dir)
        self.path = self.dir / LIVE_NAME
        self.max_bytes = int(max_mb * 1024 * 1024) if max_mb and max_mb > 0 else 0
        self.failures = 0  # failed writes over the run
        self.dropped = 0  # records lost over the run
        self._pending_dropped = 0  # lost since the last written line: told in the next record
        self._deferred: list[dict] = []  # written with the next step's lines (defer)
        self._file = None

    @property
    def failed(self) -> bool:
        """True while the last write failed (the next step retries)."""
        return self._pending_dropped > 0

    def defer(self, record: dict) -> None:
        """Queue a small record to go out with the next write_step (or flush): no fsync of its own."""
        self._deferred.append(record)

    def flush(self) -> None:
        """Write the deferred records now (train end)."""
        if self._deferred:
            self.write_step([])

    def write_step(self, records: Iterable[dict]) -> bool:
        """Append one step's records (after any deferred ones) as whole lines and make them
        durable. False if they were dropped."""
        records, self._deferred = [*self._deferred, *records], []
        try:
            lines = [json.dumps(_json_safe(r), ensure_ascii=False, allow_nan=False) for r in records]
        except Exception as exc:  # an unserialisable value: this step only
            self._dropped_step(len(records), exc)
            return False
        if lines and self._pending_dropped:
            first = json.loads(lines[0])
            first["dropped"] = self._pending_dropped
            lines[0] = json.dumps(first, ensure_ascii=False, allow_nan=False)
        payload = b"".join(_utf8_line(line) for line in lines)
        start = None
        try:
            if self._file is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._remove_stale_temps()
                # unbuffered: after a failed write no buffer is left to flush on close (which
                # would append a torn line after the cut-back); "+": read the last byte
                self._file = open_nofollow(self.path, "ab+", buffering=0)
                self._repair_torn_tail()
            start = os.fstat(self._file.fileno()).st_size
            view = memoryview(payload)
            while view:
                view = view[self._file.write(view):]
            os.fsync(self._file.fileno())
        except Exception as exc:  # disk full, permissions, a symlink planted at the live file...
            self._cut_back(start)
            self._dropped_step(len(records), exc)
            return False
        if self._pending_dropped:
            LOG.warning("axolotl_grpo_plugin: the rollout log %s is written again; %d records were "
                        "lost before this step (the next line says `\"dropped\": %d`).",
                        self.path, self._pending_dropped, self._pending_dropped)
            self._pending_dropped = 0
        if self.max_bytes and os.fstat(self._file.fileno()).st_size >= self.max_bytes:
            try:
                self._rotate()
            except Exception as exc:  # the lines are written; only the rotation is retried later
                self.failures += 1
                self.close()
                LOG.warning("axolotl_grpo_plugin: rotating the rollout log %s failed (%s: %s); "
                            "nothing is lost, rotation is retried at the next step.",
                            self.path, type(exc).__name__, exc)
        return True

    def _cut_back(self, size: int | None) -> None:
        """After a partial write: truncate to the last whole line, close, reopen next step."""
        try:
            if self._file is not None and size is not None:
                os.ftruncate(self._file.fileno(), size)
        except OSError:
            pass  # the next open starts on a fresh line anyway (_repair_torn_tail)
        self.close()

    def _dropped_step(self, count: int, exc: BaseException) -> None:
        """Count the lost records; warn at the start of an outage (not every step of it)."""
        first_of_outage = not self._pending_dropped
        self.failures += 1
        self.dropped += count
        self._pending_dropped += count
        if not first_of_outage:
            LOG.debug("axolotl_grpo_plugin: rollout log still failing (%s); %d records dropped so far",
                      exc, self.dropped)
            return
        LOG.warning(
            "axolotl_grpo_plugin: cannot write the rollout log %s (%s: %s); the %d records of this "
            "step are dropped and each next step retries (a line says when it works again). "
            "Training continues. Fix: free disk space / check permissions of output_dir, or set "
            "`grpo_plugin.rollout_log: false`.",
            self.path, type(exc).__name__, exc, count,
        )

    def _remove_stale_temps(self) -> None:
        """Temp files of a rotation killed mid-gzip (its staged part stays and is read instead)."""
        for stale in self.dir.glob(".rollouts.*.jsonl.gz.*.tmp"):
            try:
                stale.unlink()
            except OSError:
                pass

    def _repair_torn_tail(self) -> None:
        """A resumed run appends after a line torn by a kill: start on a fresh line."""
        fd = self._file.fileno()
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            self._file.write(b"\n")

    def _rotate(self) -> None:
        """Move the live file aside as the next part, gzip it (temp file, rename), start anew."""
        self._file.close()
        self._file = None
        number = max(part_numbers(self.dir), default=0) + 1
        staged = self.dir / f"rollouts.{number}.jsonl"
        os.replace(self.path, staged)  # replaces (never follows) whatever is at `staged`
        target = staged.with_name(staged.name + ".gz")
        with open(staged, "rb") as src, replacing(target, "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.remove(staged)

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        except Exception:
            pass
        self._file = None

    def summary(self) -> str | None:
        """One line for the end of the run when records were lost, else None."""
        if not self.dropped:
            return None
        return (f"axolotl_grpo_plugin: the rollout log {self.path} lost {self.dropped} records in "
                f"{self.failures} failed writes" + (" (the last step was never written)"
                                                     if self._pending_dropped else "") + ".")


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


def record_kind(record: object) -> str | None:
    """The kind of a record that is not a rollout (one of RECORD_KINDS, or another a later
    version wrote), None for a rollout. Logs written before issue 48 marked a periodic
    evaluation `"kind": "eval"`; they are read the same."""
    if not isinstance(record, dict):
        return None
    kind = record.get(KIND_FIELD, record.get("kind"))
    return kind if kind is None or isinstance(kind, str) else repr(kind)[:100]  # a hand-edited log: a kind unknown


def is_rollout(record: dict) -> bool:
    """One scored completion: rollouts carry no kind."""
    return record_kind(record) is None


SKIPPED_SHOWN = 5  # unreadable lines whose numbers read_records keeps


def read_rollouts(output_dir: str | os.PathLike, counts: dict | None = None, *,
                  everything: bool = False) -> Iterator[dict]:
    """Every complete rollout record, in order (with `everything`, the doctor's and the
    evaluations' records too, for the report). Torn or corrupt lines (not JSON, not an object,
    nested past Python's recursion limit) are skipped, never raised; `counts["skipped"]` counts them,
    `counts["skipped_at"]` lists (file, line number) of the first few, `counts["torn_at"]` the
    torn last line's."""
    for path in log_files(output_dir):
        for record in read_records(path, counts):
            if everything or is_rollout(record):
                yield record


def read_records(path: str | os.PathLike, counts: dict | None = None, *,
                 unterminated: bool = False) -> Iterator[dict]:
    """Every complete JSON object line of one file (plain or gzipped), torn or corrupt lines
    skipped and counted in `counts["skipped"]`, as read_rollouts reads each part. With
    `unterminated`, a last line without a newline is kept when it parses as a whole object (a
    file a script wrote without the final newline; a torn line never parses)."""
    for number, line in enumerate(_lines(Path(path)), 1):
        record = None
        if unterminated or line.endswith(b"\n"):  # else: the torn final line of a killed run
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                pass
        if isinstance(record, dict):
            yield record
        elif counts is not None and line.strip():
            counts["skipped"] = counts.get("skipped", 0) + 1
            if len(counts.setdefault("skipped_at", [])) < SKIPPED_SHOWN:  # where, for a clear message
                counts["skipped_at"].append((Path(path), number))
            if not line.endswith(b"\n"):
                counts["torn_at"] = (Path(path), number)  # the last line, its write unfinished


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
        with open_nofollow(aside, "ab") as f:  # first aside, then the rewrite: a kill loses nothing
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in later).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        with replacing(path, "wb") as f:  # a fresh temp file, then rename (system/safe_files.py)
            f.write(gzip.compress(b"".join(keep)) if path.suffix == ".gz" else b"".join(keep))
        moved += len(later)
    return moved


def weighted_reward(values, weights: list[float]) -> float | None:
    """The weighted sum TRL logs as `reward` (NaN rewards skipped; None if all are NaN)."""
    terms = [w * v for v, w in zip(values, weights) if v is not None and not math.isnan(v)]
    return sum(terms) if terms else None


def reward_weights(trainer, count: int) -> list[float]:
    """The trainer's reward weights (TRL's `reward_weights` tensor), 1.0 each when it has none
    that fit `count` rewards: what `weighted_reward` weighs a logged rollout's rewards with."""
    try:
        weights = [float(w) for w in trainer.reward_weights.tolist()]
        if len(weights) == count:
            return weights
    except Exception:
        pass
    return [1.0] * count
