"""Evidence JPEGs on disk, addressed by their sha256, within a disk budget, and matched to the detections naming them.

A detection names the sha256 of its picture; the picture arrives on its own
topic, before or after the detection. Because a file's name is its content's
hash, "the picture a detection names is here" is simply "a file of that name
exists".

What is kept, and for how long (``EvidenceBudget``):

* a picture is taken for a detection the gateway knows, or one that arrives
  within ``wait_s``; a picture whose detection never came is deleted then
  (``expire``), and the caller dead-letters it;
* every picture counts against its box's budget and the total one; to make
  room, pictures of leads closed more than ``retention_s`` ago go first,
  oldest first; a picture of a lead that is not closed (or of a detection
  still waiting) is never evicted. When that alone fills a budget, a new
  picture is refused (``EvidenceRefused``), for the caller to dead-letter and
  to report in ``gateway boxes``.

The index of what is kept (``index.db``, SQLite, in the evidence folder) lives
across restarts.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from common.files import private_dir, write_private_durably
from gateway.config import EvidenceSettings

log = logging.getLogger(__name__)

PENDING_LIMIT = 10_000
MB = 1024 * 1024
EVICT_BATCH = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pictures (
    detection_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    box TEXT NOT NULL,
    district TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    saved_ms INTEGER NOT NULL,
    known INTEGER NOT NULL,          -- 1: its detection is known; 0: waiting for it
    lead_id TEXT,
    closed_ms INTEGER                -- when its lead was closed; NULL while it is not
);
CREATE INDEX IF NOT EXISTS pictures_box ON pictures (box);
CREATE INDEX IF NOT EXISTS pictures_sha ON pictures (sha256);
CREATE INDEX IF NOT EXISTS pictures_lead ON pictures (lead_id);
CREATE INDEX IF NOT EXISTS pictures_waiting ON pictures (known, saved_ms);
"""


@dataclass(frozen=True, slots=True)
class EvidenceBudget:
    max_total_bytes: int = 20 * 1024 * MB
    max_box_bytes: int = 2 * 1024 * MB
    retention_s: float = 90 * 86400.0
    wait_s: float = 900.0

    @classmethod
    def of(cls, settings: EvidenceSettings) -> EvidenceBudget:
        return cls(int(settings.max_total_mb * MB), int(settings.max_box_mb * MB), settings.retention_days * 86400.0,
                   settings.wait_s)


class EvidenceRefused(Exception):
    """A picture that is not kept; ``reason`` says why (for the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Expired:
    detection_id: str
    box: str
    district: str
    sha256: str
    bytes: int


class EvidenceStore:
    def __init__(self, root: Path, budget: EvidenceBudget = EvidenceBudget()) -> None:
        self.root = root
        self.budget = budget
        self._known: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._total: int | None = None

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    # ------------------------------------------------------------------ the index

    def _index(self) -> sqlite3.Connection:
        if self._db is None:
            private_dir(self.root)
            self._db = sqlite3.connect(self.root / "index.db", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._total = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM pictures").fetchone()[0]
        return self._db

    def used(self, box: str | None = None) -> int:
        """Bytes kept, of one box or in all."""
        with self._lock:
            db = self._index()
            if box is None:
                return self._total or 0
            return db.execute("SELECT COALESCE(SUM(bytes), 0) FROM pictures WHERE box = ?", (box,)).fetchone()[0]

    # ------------------------------------------------------------------ keeping pictures

    def save(self, jpeg: bytes) -> str:
        """Store durably (write, fsync, rename) and return the sha256; no budget (``admit`` keeps one)."""
        sha = hashlib.sha256(jpeg).hexdigest()
        target = self.path_for(sha)
        if not target.exists():
            write_private_durably(target, jpeg)
        self._known.add(sha)
        return sha

    def admit(self, jpeg: bytes, *, box: str, district: str, detection_id: str, lead_id: str | None,
              known: bool, now_ms: int) -> str:
        """Keep the picture of ``detection_id`` within the budgets; its sha256. Raises EvidenceRefused."""
        sha = hashlib.sha256(jpeg).hexdigest()
        size = len(jpeg)
        with self._lock:
            db = self._index()
            if db.execute("SELECT 1 FROM pictures WHERE detection_id = ?", (detection_id,)).fetchone():
                return sha   # a redelivery
            self._make_room(db, box, size, now_ms)
        self.save(jpeg)
        with self._lock:
            db.execute("INSERT OR IGNORE INTO pictures (detection_id, sha256, box, district, bytes, saved_ms, known, "
                       "lead_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (detection_id, sha, box, district, size, now_ms, int(known), lead_id))
            self._total = (self._total or 0) + size
        return sha

    def _make_room(self, db: sqlite3.Connection, box: str, size: int, now_ms: int) -> None:
        """Under the lock: evict what may go until ``size`` more bytes fit both budgets, or refuse."""
        box_used = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM pictures WHERE box = ?", (box,)).fetchone()[0]
        for scope, limit in ((box, self.budget.max_box_bytes), (None, self.budget.max_total_bytes)):
            used = box_used if scope is not None else (self._total or 0)
            while used + size > limit:
                freed = self._evict(db, scope, used + size - limit, now_ms)
                if not freed:
                    what = f"box {box}'s" if scope is not None else "the total"
                    raise EvidenceRefused(
                        f"evidence budget full: {what} budget of {limit / MB:.0f} MB holds {used / MB:.1f} MB of "
                        f"pictures of leads that are not closed (or closed less than "
                        f"{self.budget.retention_s / 86400:g} days ago); this picture of {size} bytes is not kept")
                used -= freed
                if scope is not None:
                    box_used -= freed
                else:
                    box_used = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM pictures WHERE box = ?",
                                          (box,)).fetchone()[0]

    def _evict(self, db: sqlite3.Connection, box: str | None, needed: int, now_ms: int) -> int:
        """Delete the oldest pictures of leads closed more than ``retention_s`` ago, about ``needed`` bytes' worth;
        bytes freed (0: none may go)."""
        cutoff = now_ms - int(self.budget.retention_s * 1000)
        where = "closed_ms IS NOT NULL AND closed_ms <= ?" + (" AND box = ?" if box is not None else "")
        params = (cutoff, box) if box is not None else (cutoff,)
        rows = []
        enough = 0
        for row in db.execute(f"SELECT detection_id, sha256, bytes FROM pictures WHERE {where} ORDER BY saved_ms "
                              f"LIMIT {EVICT_BATCH}", params).fetchall():
            rows.append(row)
            enough += row[2]
            if enough >= needed:
                break
        freed = self._forget(db, rows)
        if freed:
            log.info("evidence.evicted pictures=%d bytes=%d box=%s", len(rows), freed, box or "(any)")
        return freed

    def _forget(self, db: sqlite3.Connection, rows: list[tuple[str, str, int]]) -> int:
        if not rows:
            return 0
        db.executemany("DELETE FROM pictures WHERE detection_id = ?", [(r[0],) for r in rows])
        for _, sha, _ in rows:
            if not db.execute("SELECT 1 FROM pictures WHERE sha256 = ?", (sha,)).fetchone():
                self.path_for(sha).unlink(missing_ok=True)
                self._known.discard(sha)
        freed = sum(r[2] for r in rows)
        self._total = (self._total or 0) - freed
        return freed

    def detection_arrived(self, detection_id: str, lead_id: str) -> None:
        """The detection a waiting picture belongs to came: the picture is kept with its lead."""
        with self._lock:
            self._index().execute("UPDATE pictures SET known = 1, lead_id = ? WHERE detection_id = ?",
                                  (lead_id, detection_id))

    def lead_closed(self, lead_id: str, closed_ms: int) -> None:
        """Its pictures may go ``retention_s`` after ``closed_ms``, when room is needed."""
        with self._lock:
            self._index().execute("UPDATE pictures SET closed_ms = ? WHERE lead_id = ? AND closed_ms IS NULL",
                                  (closed_ms, lead_id))

    def expire(self, now_ms: int) -> list[Expired]:
        """Forget the pictures whose detection did not arrive within ``wait_s``; those forgotten."""
        cutoff = now_ms - int(self.budget.wait_s * 1000)
        with self._lock:
            db = self._index()
            rows = db.execute("SELECT detection_id, box, district, sha256, bytes FROM pictures "
                              "WHERE known = 0 AND saved_ms <= ?", (cutoff,)).fetchall()
            self._forget(db, [(r[0], r[3], r[4]) for r in rows])
        return [Expired(*row) for row in rows]

    def has(self, sha256: str) -> bool:
        if sha256 in self._known:
            return True
        if self.path_for(sha256).is_file():
            self._known.add(sha256)
            return True
        return False

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class PendingEvidence:
    """Pictures whose detection has not arrived yet: detection id -> sha256 (bounded, oldest dropped)."""

    def __init__(self, limit: int = PENDING_LIMIT) -> None:
        self.limit = limit
        self._items: OrderedDict[str, str] = OrderedDict()

    def add(self, detection_id: str, sha256: str) -> None:
        self._items[detection_id] = sha256
        self._items.move_to_end(detection_id)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def pop(self, detection_id: str) -> str | None:
        return self._items.pop(detection_id, None)
