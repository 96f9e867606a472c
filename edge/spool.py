"""Disk spool: every outgoing message is stored here before it is published.

A message leaves the spool only when the broker acknowledged it, so a broker
outage or a crash loses nothing; on restart the rest is re-sent in order.
The per-box ``seq`` counter lives in the same database and is advanced in
the same transaction that stores the message, so it survives restarts and
never repeats.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    telemetry INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0);
"""


@dataclass(frozen=True)
class Spooled:
    row: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Spool:
    """SQLite (WAL, synchronous=FULL) outbox shared by the producer and the sender thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def append(self, topic: str, build: Callable[[int], bytes], *, qos: int = 1,
               retain: bool = False, telemetry: bool = False) -> int:
        """Take the next seq, build the payload with it and store both atomically.

        ``build`` runs under the spool's lock: it must not call the spool.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0] + 1
                payload = build(seq)
                self._db.execute("UPDATE meta SET value=? WHERE key='seq'", (seq,))
                self._insert(topic, payload, qos, retain, telemetry)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seq

    def append_raw(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Store a message that carries no seq (evidence pictures)."""
        with self._lock:
            self._insert(topic, payload, qos, retain, False)

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool, telemetry: bool) -> None:
        self._db.execute(
            "INSERT INTO outbox (topic, payload, qos, retain, telemetry, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (topic, payload, qos, int(retain), int(telemetry), int(time.time() * 1000)),
        )

    def after(self, row: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages stored after ``row``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT row, topic, payload, qos, retain FROM outbox WHERE row > ? ORDER BY row LIMIT ?",
                (row, limit),
            ).fetchall()
        return [Spooled(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def remove(self, row: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE row = ?", (row,))

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def oldest_age_s(self) -> float:
        with self._lock:
            oldest = self._db.execute("SELECT MIN(created_ms) FROM outbox").fetchone()[0]
        return 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)

    def last_seq(self) -> int:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
