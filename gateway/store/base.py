"""The storage seam: what the gateway writes and reads back, as an interface with more than one implementation.

    LeadStore (Protocol)
    ├── InfluxStore   gateway.store.influxdb: InfluxDB over its v1 API (InfluxQL, line protocol)
    └── MemoryStore   gateway.store.memory: in this process, for tests and for trying things out

The gateway writes points (``gateway.store.schema`` says how messages and
leads become points) and reads back rows: a row maps column names to values,
tags and fields alike, and carries the point's ``time`` in nanoseconds. Both
implementations keep InfluxDB's rule that a point written again with the same
measurement, tags and time replaces the fields it names and keeps the rest.
The reads are those the gateway needs, named by purpose: rebuilding the
dedupe state on start (``ledger_rows``, ``ledgers``, ``lead_rows``,
``box_seqs``, ``open_gaps``), learning case staff's changes
(``events_since``), and serving the desk (``leads``, ``lead``, ``ledger``,
``lead_events``, ``boxes``).

Errors: ``StoreError`` for anything the store refused; ``StoreUnavailable``
(a subclass) when it could not be reached and a retry later may succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.dedupe.seqgaps import Gap
from gateway.store.lineprotocol import Point
from gateway.store.schema import EVENT_DETAILS, LeadEvent

Row = dict[str, Any]
# Measurements whose points carry a box's seq.
SEQ_MEASUREMENTS = ("detection", "sensor", "box_health")


class StoreError(Exception):
    """The store refused a write or a read, or could not be used; the message says why."""


class StoreUnavailable(StoreError):
    """The store could not be reached or is overloaded; retrying later may succeed."""


@dataclass(frozen=True, slots=True)
class BoxSeqState:
    box: str
    district: str
    last_seq: int
    first_seq: int = 1    # the lowest seq stored in the window read: what lies below is not known


@dataclass(frozen=True, slots=True)
class SeenEvent:
    lead_id: str
    time_ns: int
    event: LeadEvent


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """Which leads the desk lists. Values are names (the contract's NAME_PATTERN), checked by the desk."""

    statuses: tuple[str, ...] = ()
    team: str | None = None
    category: str | None = None
    district: str | None = None
    zone: str | None = None
    box: str | None = None
    since_ms: int | None = None     # lead point time (its first detection) in [since_ms, until_ms)
    until_ms: int | None = None
    limit: int | None = None
    fields: tuple[str, ...] = ()    # only these fields (and the tags); all if empty
    opened_since_ms: int | None = None   # only leads whose ``opened_at`` is at or after this

    def matches(self, row: Row) -> bool:
        return ((not self.statuses or (row.get("status") or "open") in self.statuses)
                and all(self_value is None or row.get(name) == self_value for name, self_value in (
                    ("team", self.team), ("category", self.category), ("district", self.district),
                    ("zone", self.zone)))
                and (self.box is None or self.box in (row.get("boxes") or "").split(","))
                and (self.opened_since_ms is None or (row.get("opened_at") or 0) >= self.opened_since_ms)
                and (self.since_ms is None or row["time"] >= self.since_ms * 1_000_000)
                and (self.until_ms is None or row["time"] < self.until_ms * 1_000_000))


class LeadStore(Protocol):
    """Where the gateway keeps messages, leads and case staff's changes."""

    def create_database(self) -> None:
        """Make the database if it is not there yet."""

    def write(self, points: Sequence[Point]) -> None:
        """Store the points (same measurement, tags and time: the named fields replaced)."""

    def close(self) -> None:
        ...

    # ----------------------------------------------------------------- the gateway's own state

    def ledger_rows(self, since_ms: int, until_ms: int | None, districts: Sequence[str] = ()) -> list[Row]:
        """Detections with event time in [since_ms, until_ms), as ledger rows (``schema.LEDGER_NAMES``)."""

    def ledger_rows_in(self, windows: Sequence[tuple[int, int]], districts: Sequence[str] = ()) -> list[Row]:
        """Detections with event time in any of the [since_ms, until_ms) windows, as ledger rows, read at once."""

    def ledgers(self, lead_ids: Sequence[str]) -> dict[str, list[Row]]:
        """The whole ledger of each of these leads, by lead id."""

    def lead_rows(self, lead_ids: Sequence[str]) -> dict[str, Row]:
        """The ``lead`` point of each of these leads that has one, by lead id."""

    def box_seqs(self, since_ms: int, districts: Sequence[str] = ()) -> list[BoxSeqState]:
        """Each box's highest (and lowest) seq stored since ``since_ms`` over ``SEQ_MEASUREMENTS``."""

    def open_gaps(self, since_ms: int, districts: Sequence[str] = ()) -> list[Gap]:
        """The seq gaps opened since ``since_ms`` and not closed yet."""

    def events_since(self, since_ms: int) -> list[SeenEvent]:
        """Case-staff changes written at or after ``since_ms``, oldest first."""

    # ----------------------------------------------------------------- the desk

    def leads(self, category: str | None = None, district: str | None = None) -> list[Row]:
        """Every ``lead`` point, of one category or district if given."""

    def leads_where(self, query: LeadQuery) -> list[Row]:
        """The ``lead`` points ``query`` asks for, newest first (by the lead point's time), at most ``limit``."""

    def lead(self, lead_id: str) -> Row | None:
        """One lead's point, or None."""

    def ledger(self, lead_id: str) -> list[Row]:
        """One lead's ledger rows, in the order of ``n``, with each detection's box (``BBOX_FIELDS``)."""

    def detection_rows(self, lead_id: str) -> list[Row]:
        """Every field and tag of the detections tagged with this lead (to copy them into another lead)."""

    def lead_events(self, lead_id: str) -> list[Row]:
        """One lead's ``lead_event`` rows."""

    def boxes(self, since_ms: int) -> list[Row]:
        """Per box heard of since ``since_ms``: box, district, last_seen (ms), online, last_seq, open_gaps,
        missing, backfilled and dropped_by_policy (seqs of its gaps that arrived late, or that the box
        announced dropped), delivery (from its last health: confirmed / puback), evidence_used,
        evidence_budget, evidence_refused; sorted by district and box."""


# --------------------------------------------------------------------------- rows both stores build alike


def lead_event(row: Row) -> LeadEvent:
    """A ``lead_event`` row as the change it records."""
    details = {key: row[key] for key in EVENT_DETAILS if row.get(key) is not None}
    return LeadEvent(row.get("event", ""), row.get("from_status", ""), row.get("to_status", ""), row.get("by", ""),
                     row.get("at", row["time"] // 1_000_000), row.get("outcome"), row.get("note"), details or None)


def new_box_summary(box: str, district: str) -> Row:
    return {"box": box, "district": district, "last_seen": None, "online": None, "last_seq": None,
            "open_gaps": 0, "missing": 0, "backfilled": 0, "dropped_by_policy": 0, "delivery": None,
            "evidence_used": None, "evidence_budget": None, "evidence_refused": 0,
            "chain": None, "verified": 0, "unverified": 0, "failed": 0, "chain_breaks": 0, "last_break": None}


def add_chain(summary: Row, row: Row) -> None:
    """The last ``box_chain`` row of a box into its summary: ``chain`` says ok, broken or unsigned."""
    for name in ("verified", "unverified", "failed"):
        summary[name] = row.get(name) or 0
    summary["chain_breaks"] = row.get("breaks") or 0
    summary["last_break"] = row.get("last_break")
    if summary["chain_breaks"] or summary["failed"]:
        summary["chain"] = "broken"
    elif summary["verified"]:
        summary["chain"] = "ok"
    else:
        summary["chain"] = "unsigned"


def add_gap(summary: Row, row: Row) -> None:
    """One ``box_gap`` row into a box's summary."""
    if row.get("status") == "open":
        summary["open_gaps"] += 1
        summary["missing"] += row.get("missing", 0)
    summary["backfilled"] += row.get("backfilled") or 0
    summary["dropped_by_policy"] += row.get("policy") or 0


def add_evidence(summary: Row, row: Row) -> None:
    """The last ``box_evidence`` row of a box into its summary."""
    summary["evidence_used"] = row.get("used_bytes")
    summary["evidence_budget"] = row.get("budget_bytes")
    summary["evidence_refused"] = row.get("refused") or 0


def seen_at(summary: Row, time_ns: int) -> None:
    """The box was heard of at ``time_ns``; ``last_seen`` keeps the latest, in ms."""
    summary["last_seen"] = max(summary["last_seen"] or 0, time_ns // 1_000_000)
