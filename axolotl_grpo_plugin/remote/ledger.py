"""The run's spend ledger: calls and tokens per remote reward, shared by every process of a run.

Why: with N training processes (`accelerate launch`, `axolotl train` on N GPUs) each rank scores
its own completions; a budget counted per process let a run spend N x what the user wrote. So
a training run keeps one sqlite file in its output_dir (OUTPUT_DIR/remote-rewards-spend.sqlite),
every call is reserved there in one transaction BEFORE it is sent (so the run's calls never pass
`budget_calls`), and tokens are added when the answer comes. A resumed run continues the file's
spend; a fresh run empties it at start (`open_for_run`, rank 0 of a training launch only).

Rollback journal, not WAL: output_dir is often a network filesystem, where WAL's shared memory
does not work; `synchronous=OFF` keeps a reservation at tens of microseconds (a killed process
loses nothing; a power loss may leave a corrupt file, which `open_for_run` reports with its fix).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import PluginError, Problem
from ..system.paths import user_path


LOG = logging.getLogger("axolotl_grpo_plugin.rewards")
LEDGER_FILE = "remote-rewards-spend.sqlite"
LOCK_WAIT_S = 30.0  # a transaction here takes microseconds; waiting this long means a stuck holder


class LedgerError(PluginError):
    """The ledger cannot be read or written; the message names the file and the fix."""

    style = "block"


def ledger_error(path: Path, exc: BaseException) -> LedgerError:
    text = f"{type(exc).__name__}: {exc}"
    unreadable = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
    if unreadable or "not a database" in str(exc) or "malformed" in str(exc):
        message = f"the remote rewards' spend ledger is not readable ({text})."
        fix = (f"delete {path} (this run's remote spend then starts again at 0), or restore it "
               "from a copy; then start the run again")
    else:
        message = f"the remote rewards' spend ledger cannot be used ({text})."
        fix = (f"make {path.parent} writable by every training process, with {path} a regular file "
               "(or absent), or give the run an output_dir it can write")
    return LedgerError([Problem("output_dir", str(path.parent), message, fix)])


class Ledger:
    """One run's spend per reward name, in OUTPUT_DIR/remote-rewards-spend.sqlite."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child opens its own
            if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
                raise OSError(f"{self.path} is a link or not a regular file")
            conn = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("CREATE TABLE IF NOT EXISTS spend (name TEXT PRIMARY KEY, "
                             "calls INTEGER NOT NULL, tokens INTEGER NOT NULL, at REAL)")
                conn.execute("SELECT count(*) FROM spend").fetchone()  # a corrupt file fails here
            except BaseException:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _do(self, work) -> Any:
        """`work(conn)` in one write transaction; LedgerError naming the file on any failure."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")  # the write lock first: no two ranks read the same total
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return result
            except (sqlite3.Error, OSError) as exc:
                self._conn = None  # reopened on the next try
                raise ledger_error(self.path, exc) from None

    def reserve(self, name: str, budget_calls: int | None, budget_tokens: int | None) -> str | None:
        """Count one call for `name` unless a budget is spent; then say which (nothing counted)."""
        def work(conn):
            calls, tokens = _row(conn, name)
            if budget_calls is not None and calls >= budget_calls:
                return f"budget_calls={budget_calls} spent ({calls} calls)"
            if budget_tokens is not None and tokens >= budget_tokens:
                return f"budget_tokens={budget_tokens} spent ({tokens} tokens)"
            _write(conn, name, calls + 1, tokens)
            return None
        return self._do(work)

    def add_tokens(self, name: str, tokens: int) -> None:
        def work(conn):
            calls, spent = _row(conn, name)
            _write(conn, name, calls, spent + tokens)
        if tokens > 0:
            self._do(work)

    def totals(self, name: str) -> tuple[int, int]:
        """(calls, tokens) the run has spent on `name`."""
        return self._do(lambda conn: _row(conn, name))

    def reset(self) -> dict[str, tuple[int, int]]:
        """Empty the ledger (a fresh run); what it held, by name."""
        def work(conn):
            before = {n: (c, t) for n, c, t in conn.execute("SELECT name, calls, tokens FROM spend")}
            conn.execute("DELETE FROM spend")
            return before
        return self._do(work)

    def everything(self) -> dict[str, tuple[int, int]]:
        return self._do(lambda conn: {n: (c, t) for n, c, t in conn.execute("SELECT name, calls, tokens FROM spend")})


def _row(conn: sqlite3.Connection, name: str) -> tuple[int, int]:
    row = conn.execute("SELECT calls, tokens FROM spend WHERE name = ?", (name,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _write(conn: sqlite3.Connection, name: str, calls: int, tokens: int) -> None:
    conn.execute("INSERT OR REPLACE INTO spend VALUES (?, ?, ?, ?)", (name, calls, tokens, time.time()))


def ledger_path(output_dir: str | os.PathLike) -> Path:
    return user_path(output_dir).resolve() / LEDGER_FILE


def open_for_run(output_dir: str | os.PathLike, *, fresh: bool) -> Path:
    """The run's ledger, opened by its main process before anything loads: a corrupt or unwritable
    one raises LedgerError here; a fresh run empties it (saying what an earlier run had spent)."""
    path = ledger_path(output_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ledger_error(path, exc) from None
    ledger = Ledger(path)
    earlier = ledger.reset() if fresh else ledger.everything()
    spent = ", ".join(f"{n}: {c} calls, {t} tokens" for n, (c, t) in sorted(earlier.items()))
    if fresh and spent:
        LOG.info("remote rewards: a fresh run in %s: the spend ledger starts at 0 (an earlier run "
                 "there had spent %s)", path.parent, spent)
    elif not fresh:
        LOG.info("remote rewards: a resumed run continues the spend in %s (%s)", path, spent or "nothing yet")
    return path
