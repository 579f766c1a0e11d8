"""The on-disk cache of remote answers: a resumed or repeated run pays nothing twice.

One sqlite file (stdlib `sqlite3`, WAL mode, so the training processes of one machine share it).
Keys are hashes of everything that decides the answer (kind, endpoint, model, template and score
settings, the request body); only definite answers are stored, never failures. A cache that
cannot be opened or written is switched off with one warning: it never fails a batch.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path


LOG = logging.getLogger("axolotl_grpo_plugin.rewards")
_CHUNK = 500  # sqlite's host-parameter limit is 999 on old builds


class AnswerCache:
    """key -> value (a float, or None for a definite 'not applicable')."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._broken = False
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._conn is None or self._pid != os.getpid():  # a forked child opens its own
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value REAL, at REAL)")
            except (sqlite3.Error, OSError) as exc:
                self._disable(exc)
                return None
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get_many(self, keys: Iterable[str]) -> dict[str, float | None]:
        """The cached answers among `keys` (a key absent from the result is a miss)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, float | None] = {}
        with self._lock:
            conn = self._connection()
            if conn is None:
                return found
            try:
                for i in range(0, len(keys), _CHUNK):
                    chunk = keys[i:i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    found.update(conn.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk))
            except sqlite3.Error as exc:
                self._disable(exc)
        return found

    def put_many(self, items: dict[str, float | None]) -> None:
        if not items:
            return
        with self._lock:
            conn = self._connection()
            if conn is None:
                return
            now = time.time()
            try:
                with conn:
                    conn.execute("BEGIN")
                    conn.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)",
                                     [(k, v, now) for k, v in items.items()])
            except sqlite3.Error as exc:
                self._disable(exc)

    def _disable(self, exc: BaseException) -> None:
        self._broken = True
        LOG.warning("remote reward cache %s cannot be used (%s: %s); answers are not cached in this "
                    "process. Fix: point `cache:` at a writable path, or set it to false.",
                    self.path, type(exc).__name__, exc)
