"""A ``LeadStore`` held in this process: the same points, the same rows, no database.

Points are kept as InfluxDB keeps them: one per measurement, tag set and
time, a point written again replacing the fields it names. The reads answer
from those points as the InfluxDB store's queries do, so the storage suite
(tests/gateway/test_store.py) runs the same checks against both, and the
gateway's restore, late reads, casework and preview can be tried without a
database. Nothing is kept across processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.dedupe.seqgaps import Gap, parse_ranges
from gateway.store.base import (
    SEQ_MEASUREMENTS,
    BoxSeqState,
    LeadQuery,
    Row,
    SeenEvent,
    add_chain,
    add_evidence,
    add_gap,
    lead_event,
    new_box_summary,
    seen_at,
)
from gateway.store.lineprotocol import Point
from gateway.store.schema import BBOX_FIELDS, LEDGER_NAMES, NS_PER_MS, ms_to_ns

_Key = tuple[str, tuple[tuple[str, str], ...], int]


class MemoryStore:
    """Points in a dict, read back as rows; safe to share between threads."""

    def __init__(self) -> None:
        self._points: dict[_Key, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create_database(self) -> None:
        pass

    def write(self, points: Sequence[Point]) -> None:
        with self._lock:
            for point in points:
                key = (point.measurement, tuple(sorted(point.tags.items())), point.time)
                self._points.setdefault(key, {}).update(point.fields)

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- rows

    def _rows(self, measurement: str, since_ms: int | None = None, until_ms: int | None = None,
              where: Callable[[Row], bool] = lambda row: True) -> list[Row]:
        since = ms_to_ns(since_ms) if since_ms is not None else None
        until = ms_to_ns(until_ms) if until_ms else None
        with self._lock:
            items = [(key, dict(fields)) for key, fields in self._points.items() if key[0] == measurement]
        rows = []
        for (_, tags, time_ns), fields in sorted(items, key=lambda item: item[0][2]):
            if (since is not None and time_ns < since) or (until is not None and time_ns >= until):
                continue
            row = {"time": time_ns, **dict(tags), **fields}
            if where(row):
                rows.append(row)
        return rows

    def _ledger(self, rows: Iterable[Row]) -> list[Row]:
        return [{"time": row["time"], **{name: row.get(stored) for stored, name in LEDGER_NAMES.items()}}
                for row in rows]

    @staticmethod
    def _in(districts: Sequence[str]) -> Callable[[Row], bool]:
        return lambda row: not districts or row.get("district") in districts

    # ----------------------------------------------------------------- the gateway's own state

    def ledger_rows(self, since_ms: int, until_ms: int | None, districts: Sequence[str] = ()) -> list[Row]:
        return self._ledger(self._rows("detection", since_ms, until_ms, self._in(districts)))

    def ledger_rows_in(self, windows: Sequence[tuple[int, int]], districts: Sequence[str] = ()) -> list[Row]:
        return [row for since, until in windows for row in self.ledger_rows(since, until, districts)]

    def ledgers(self, lead_ids: Sequence[str]) -> dict[str, list[Row]]:
        wanted = set(lead_ids)
        found: dict[str, list[Row]] = {}
        for row in self._ledger(self._rows("detection", where=lambda row: row.get("lead_id") in wanted)):
            found.setdefault(row["lead_id"], []).append(row)
        return found

    def lead_rows(self, lead_ids: Sequence[str]) -> dict[str, Row]:
        wanted = set(lead_ids)
        return {row["lead_id"]: row for row in self._rows("lead", where=lambda row: row["lead_id"] in wanted)}

    def box_seqs(self, since_ms: int, districts: Sequence[str] = ()) -> list[BoxSeqState]:
        best: dict[str, BoxSeqState] = {}
        for measurement in SEQ_MEASUREMENTS:
            for row in self._rows(measurement, since_ms, where=self._in(districts)):
                current = best.get(row["box"])
                if "seq" not in row:
                    continue
                if current is None:
                    best[row["box"]] = BoxSeqState(row["box"], row["district"], row["seq"], row["seq"])
                else:
                    best[row["box"]] = BoxSeqState(row["box"], row["district"], max(row["seq"], current.last_seq),
                                                   min(row["seq"], current.first_seq))
        return list(best.values())

    def open_gaps(self, since_ms: int, districts: Sequence[str] = ()) -> list[Gap]:
        return [Gap(row["box"], row["district"], row["from_seq"], row["to_seq"], row["time"] // NS_PER_MS,
                    parse_ranges(row.get("ranges", "")), row.get("policy", 0), row.get("backfilled", 0))
                for row in self._rows("box_gap", since_ms, where=self._in(districts)) if row.get("status") == "open"]

    def events_since(self, since_ms: int) -> list[SeenEvent]:
        return [SeenEvent(row["lead_id"], row["time"], lead_event(row)) for row in self._rows("lead_event", since_ms)]

    # ----------------------------------------------------------------- the desk

    def leads(self, category: str | None = None, district: str | None = None) -> list[Row]:
        return self._rows("lead", where=lambda row: (category is None or row.get("category") == category)
                          and (district is None or row.get("district") == district))

    def leads_where(self, query: LeadQuery) -> list[Row]:
        rows = sorted(self._rows("lead", where=query.matches), key=lambda row: row["time"], reverse=True)
        return rows[:query.limit] if query.limit is not None else rows

    def lead(self, lead_id: str) -> Row | None:
        rows = self._rows("lead", where=lambda row: row["lead_id"] == lead_id)
        return rows[0] if rows else None

    def ledger(self, lead_id: str) -> list[Row]:
        rows = self._rows("detection", where=lambda row: row.get("lead_id") == lead_id)
        ledger = [{**entry, **{name: row.get(name) for name in BBOX_FIELDS}}
                  for entry, row in zip(self._ledger(rows), rows)]
        return sorted(ledger, key=lambda row: row.get("n") or 0)

    def detection_rows(self, lead_id: str) -> list[Row]:
        return self._rows("detection", where=lambda row: row.get("lead_id") == lead_id)

    def lead_events(self, lead_id: str) -> list[Row]:
        return self._rows("lead_event", where=lambda row: row["lead_id"] == lead_id)

    def boxes(self, since_ms: int) -> list[Row]:
        boxes: dict[str, Row] = {}

        def box(row: Row) -> Row:
            return boxes.setdefault(row["box"], new_box_summary(row["box"], row["district"]))

        for measurement in SEQ_MEASUREMENTS:
            for row in self._rows(measurement, since_ms, where=lambda row: "seq" in row):
                entry = box(row)
                seen_at(entry, row["time"])
                entry["last_seq"] = max(entry["last_seq"] or 0, row["seq"])
        for row in self._rows("box_status", since_ms, where=lambda row: "online" in row):
            entry = box(row)
            entry["online"] = bool(row["online"])   # rows come oldest first: the last one stands
            seen_at(entry, row["time"])
        for row in self._rows("box_gap", since_ms, where=lambda row: "status" in row):
            add_gap(box(row), row)
        for row in self._rows("box_health", since_ms, where=lambda row: "delivery" in row):
            box(row)["delivery"] = row["delivery"]
        for row in self._rows("box_evidence", since_ms, where=lambda row: "used_bytes" in row):
            add_evidence(box(row), row)
        for row in self._rows("box_chain", since_ms, where=lambda row: "verified" in row):
            add_chain(box(row), row)
        return sorted(boxes.values(), key=lambda b: (b["district"], b["box"]))
