"""Disk spool: every outgoing message is stored here before it is published.

A message that carries a ``seq`` leaves the spool only when the gateway
confirmed it stored (``confirm``), or, on a box that falls back to the
broker's word, when the broker acknowledged it; a message without one
(evidence, config acks) leaves on the broker's acknowledgement. So a broker
outage, a broker crash or a box crash loses nothing; on restart the rest is
re-sent in order.
The per-box ``seq`` counter lives in the same database and is advanced in
the same transaction that stores the message, so it survives restarts and
never repeats.

Size policy, for outages longer than the disk can hold:

- past ``max_bytes`` the oldest telemetry (health, sensor readings) is dropped;
- when the disk (or ``page_limit``) is actually full, telemetry goes first,
  then the oldest evidence pictures, and only then the oldest detections.

Every drop is counted (``dropped()``, reported in the box health) and logged
as an error: a box that drops detections must be visible from the gateway.
The seqs dropped are kept as ranges (``dropped_seqs()``) and announced in the
health message until a confirmation covers them, so the gateway records them
as closed by policy instead of waiting for them.

With a chain (``edge.chain``, ``attach_chain``) each seq message is linked to
the one before when it is stored, and the chain head is kept in the same
transaction, so a restarted box goes on with its chain. A dropped run keeps
its links (the ``prev`` of its first message, the hash of its last) for the
announcement, so the gateway can follow the chain past it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from common.files import private_file
from contract import GENESIS, digest, seq_runs
from contract.chain import prev_of

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DROP_BATCH = 50
DROPPED_RECORD = 1000   # runs of dropped seqs kept on record once a confirmation covers them

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    class INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_class ON outbox (class, row);
CREATE TABLE IF NOT EXISTS dropped_seqs (
    from_seq INTEGER PRIMARY KEY,
    to_seq INTEGER NOT NULL,
    class INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chain (id INTEGER PRIMARY KEY CHECK (id = 1), head_seq INTEGER NOT NULL,
                                  head TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('confirmed_upto', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('confirmation_heard', 0);
"""
# Spools written before confirmed delivery lack the seq column; it is added on open (NULL: sent before).
_SEQ_COLUMN = "ALTER TABLE outbox ADD COLUMN seq INTEGER"
_SEQ_INDEX = "CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (seq) WHERE seq IS NOT NULL"
# Spools written before the chain lack the links of dropped runs; added on open (NULL: unknown).
_LINK_COLUMNS = ("ALTER TABLE dropped_seqs ADD COLUMN prev TEXT", "ALTER TABLE dropped_seqs ADD COLUMN last_hash TEXT")


class Class(IntEnum):
    """What a message is, in the order the spool gives it up when full (highest first)."""

    KEEP = 0         # detections, config acks
    EVIDENCE = 1
    TELEMETRY = 2    # health, sensor readings


class SpoolFull(RuntimeError):
    """Nothing more can be dropped and the message still does not fit."""


@dataclass(frozen=True)
class Spooled:
    row: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    seq: int | None = None    # None: a message without seq, freed on the broker's acknowledgement


def _is_full(exc: sqlite3.OperationalError) -> bool:
    return "full" in str(exc).lower()


class Spool:
    """SQLite (WAL, synchronous=FULL) outbox shared by the producer and the sender thread."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, page_limit: int | None = None) -> None:
        private_file(path)   # SQLite gives its -wal and -shm files the database file's mode
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        if "seq" not in {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}:
            self._db.execute(_SEQ_COLUMN)
        self._db.execute(_SEQ_INDEX)
        if "prev" not in {row[1] for row in self._db.execute("PRAGMA table_info(dropped_seqs)")}:
            for statement in _LINK_COLUMNS:
                self._db.execute(statement)
        self._chain = None
        if page_limit is not None:  # stands in for a full disk in tests
            self._db.execute(f"PRAGMA max_page_count={int(page_limit)}")
        self._page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._lock = threading.Lock()

    def chain_head(self) -> tuple[int, str]:
        """(seq, hash) of the last message linked into the chain; (0, GENESIS) before the first."""
        with self._lock:
            row = self._db.execute("SELECT head_seq, head FROM chain WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def attach_chain(self, chain) -> None:
        """Link every seq message stored from now on with ``chain`` (an ``edge.chain.ChainWriter`` started at
        ``chain_head()``)."""
        self._chain = chain

    def append(self, topic: str, build: Callable[[int], bytes], *, qos: int = 1,
               retain: bool = False, telemetry: bool = False) -> int:
        """Take the next seq, build the payload with it and store both atomically.

        ``build`` runs under the spool's lock: it must not call the spool.
        """
        kind = Class.TELEMETRY if telemetry else Class.KEEP
        with self._lock:
            while True:
                try:
                    return self._append_seq(topic, build, qos, retain, kind)
                except sqlite3.OperationalError as exc:
                    if not _is_full(exc):
                        raise
                    self._make_room(kind)

    def append_raw(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                   evidence: bool = False) -> None:
        """Store a message that carries no seq (evidence pictures, config acks)."""
        kind = Class.EVIDENCE if evidence else Class.KEEP
        with self._lock:
            while True:
                try:
                    self._insert(topic, payload, qos, retain, kind)
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_full(exc):
                        raise
                    self._make_room(kind)
            self._trim_telemetry()

    def _append_seq(self, topic: str, build: Callable[[int], bytes], qos: int, retain: bool, kind: Class) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            seq = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0] + 1
            payload = build(seq)
            head = None
            if self._chain is not None:
                payload, head = self._chain.link(payload)
                self._db.execute("INSERT OR REPLACE INTO chain (id, head_seq, head) VALUES (1, ?, ?)", (seq, head))
            self._db.execute("UPDATE meta SET value=? WHERE key='seq'", (seq,))
            self._insert(topic, payload, qos, retain, kind, seq)
            self._db.execute("COMMIT")
            if head is not None:
                self._chain.advance(seq, head)
        except BaseException:
            if self._db.in_transaction:  # SQLite already rolled back after some errors, "full" among them
                self._db.execute("ROLLBACK")
            raise
        self._trim_telemetry()
        return seq

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool, kind: Class,
                seq: int | None = None) -> None:
        self._db.execute(
            "INSERT INTO outbox (topic, payload, qos, retain, class, created_ms, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (topic, payload, qos, int(retain), int(kind), int(time.time() * 1000), seq),
        )

    def _used_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    def _trim_telemetry(self) -> None:
        while self._used_bytes() > self.max_bytes:
            if not self._drop_oldest(Class.TELEMETRY, "over max size"):
                return

    def _make_room(self, incoming: Class) -> None:
        """The disk is full: give up the least important messages, loudly."""
        for victim in (Class.TELEMETRY, Class.EVIDENCE, Class.KEEP):
            if self._drop_oldest(victim, "disk full"):
                return
        raise SpoolFull(f"spool is full and holds nothing to drop for a {incoming.name.lower()} message")

    def _drop_oldest(self, kind: Class, why: str) -> int:
        found = self._db.execute(
            "SELECT row, seq, payload FROM outbox WHERE class = ? ORDER BY row LIMIT ?", (int(kind), DROP_BATCH)
        ).fetchall()
        if not found:
            return 0
        rows = [r[0] for r in found]
        links = {r[1]: (prev_of(bytes(r[2])), digest(bytes(r[2]))) for r in found if r[1] is not None}
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(f"DELETE FROM outbox WHERE row IN ({','.join('?' * len(rows))})", rows)
        self._record_dropped_seqs(sorted(links), kind, links)
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                         (f"dropped_{kind.name.lower()}", len(rows)))
        self._db.execute("COMMIT")
        level = logging.WARNING if kind is Class.TELEMETRY else logging.ERROR
        log.log(level, "spool.dropped class=%s messages=%d reason=%s", kind.name.lower(), len(rows), why)
        return len(rows)

    def _record_dropped_seqs(self, seqs: list[int], kind: Class,
                             links: dict[int, tuple[str | None, str]] | None = None) -> None:
        """Inside the dropping transaction: keep the dropped seqs as ranges, merged with the ones before, with
        the chain links around each range (``links``: seq -> (its prev, its hash))."""
        links = links or {}
        for first, last in seq_runs(seqs):
            last_hash = links[last][1] if last in links and links[last][0] is not None else None
            before = self._db.execute("SELECT from_seq, to_seq FROM dropped_seqs WHERE to_seq = ? AND class = ?",
                                      (first - 1, int(kind))).fetchone()
            if before is not None:
                self._db.execute("UPDATE dropped_seqs SET to_seq = ?, last_hash = ? WHERE from_seq = ?",
                                 (last, last_hash, before[0]))
            else:
                prev = links[first][0] if first in links else None
                self._db.execute("INSERT OR REPLACE INTO dropped_seqs (from_seq, to_seq, class, prev, last_hash) "
                                 "VALUES (?, ?, ?, ?, ?)", (first, last, int(kind), prev, last_hash))

    def after(self, row: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages stored after ``row``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT row, topic, payload, qos, retain, seq FROM outbox WHERE row > ? ORDER BY row LIMIT ?",
                (row, limit),
            ).fetchall()
        return [Spooled(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def rows(self, rows: list[int]) -> list[Spooled]:
        """These messages, those still in the spool, oldest first."""
        if not rows:
            return []
        with self._lock:
            found = self._db.execute(
                f"SELECT row, topic, payload, qos, retain, seq FROM outbox WHERE row IN ({','.join('?' * len(rows))}) "
                "ORDER BY row", rows).fetchall()
        return [Spooled(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in found]

    def seq_rows(self, from_seq: int, to_seq: int, limit: int) -> list[Spooled]:
        """The messages with a seq in [from_seq, to_seq] still in the spool, oldest first (a re-send request)."""
        with self._lock:
            found = self._db.execute(
                "SELECT row, topic, payload, qos, retain, seq FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq "
                "LIMIT ?", (from_seq, to_seq, limit)).fetchall()
        return [Spooled(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in found]

    def confirm(self, upto: int, ranges: list[tuple[int, int]]) -> list[int]:
        """The gateway stored every seq up to ``upto`` and those in ``ranges``: forget them; the rows forgotten.

        Dropped-seq announcements that ``upto`` covers are no longer made. Not synced
        to disk, like ``remove``: a lost removal only means a harmless re-send.
        """
        conditions = ["seq <= ?"] + ["seq BETWEEN ? AND ?"] * len(ranges)
        params = [upto] + [bound for first_last in ranges for bound in first_last]
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                gone = [r[0] for r in self._db.execute(
                    f"SELECT row FROM outbox WHERE seq IS NOT NULL AND ({' OR '.join(conditions)})", params)]
                if gone:
                    self._db.executemany("DELETE FROM outbox WHERE row = ?", [(row,) for row in gone])
                # Covered announcements are no longer sent (``dropped_seqs``); the record is kept, bounded.
                self._db.execute("DELETE FROM dropped_seqs WHERE to_seq <= ? AND from_seq NOT IN "
                                 "(SELECT from_seq FROM dropped_seqs ORDER BY from_seq DESC LIMIT ?)",
                                 (upto, DROPPED_RECORD))
                self._db.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'confirmed_upto'", (upto,))
                self._db.execute("UPDATE meta SET value = 1 WHERE key = 'confirmation_heard'")
                self._db.execute("COMMIT")
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
        return gone

    def confirmation_heard(self) -> bool:
        """Whether a gateway ever confirmed anything to this spool (kept across restarts)."""
        with self._lock:
            return bool(self._db.execute("SELECT value FROM meta WHERE key='confirmation_heard'").fetchone()[0])

    def confirmed_upto(self) -> int:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key='confirmed_upto'").fetchone()[0]

    def dropped_seqs(self, limit: int = 256, covered: bool = False) -> list[tuple[str, int, int]]:
        """(class, from_seq, to_seq) of the seqs given up and not yet covered by a confirmation (with ``covered``,
        also the last ones covered), oldest first."""
        with self._lock:
            upto = -1 if covered else self._db.execute(
                "SELECT value FROM meta WHERE key='confirmed_upto'").fetchone()[0]
            found = self._db.execute("SELECT class, from_seq, to_seq FROM dropped_seqs WHERE to_seq > ? "
                                     "ORDER BY from_seq LIMIT ?", (upto, limit)).fetchall()
        return [(Class(kind).name.lower(), first, last) for kind, first, last in found]

    def dropped_links(self, limit: int = 256) -> list[tuple[str, int, int, str | None, str | None]]:
        """As ``dropped_seqs``, with each run's chain links: (class, from_seq, to_seq, prev, last_hash)."""
        with self._lock:
            upto = self._db.execute("SELECT value FROM meta WHERE key='confirmed_upto'").fetchone()[0]
            found = self._db.execute("SELECT class, from_seq, to_seq, prev, last_hash FROM dropped_seqs "
                                     "WHERE to_seq > ? ORDER BY from_seq LIMIT ?", (upto, limit)).fetchall()
        return [(Class(kind).name.lower(), first, last, prev, last_hash) for kind, first, last, prev, last_hash in found]

    def remove(self, rows: list[int]) -> None:
        """Forget acknowledged messages, in one transaction.

        Not synced to disk: after a power cut a removal may be lost, which only
        means the message is sent once more, and the gateway ignores repeats.
        """
        if not rows:
            return
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE row = ?", [(row,) for row in rows])
                self._db.execute("COMMIT")
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def oldest_age_s(self) -> float:
        with self._lock:
            oldest = self._db.execute("SELECT MIN(created_ms) FROM outbox").fetchone()[0]
        return 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)

    def dropped(self) -> dict[str, int]:
        """Messages given up so far, by class (telemetry, evidence, keep)."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped_%'").fetchall()
        return {key.removeprefix("dropped_"): value for key, value in rows}

    def last_seq(self) -> int:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

