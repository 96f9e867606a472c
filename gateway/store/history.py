"""Reading the gateway's own state back from InfluxDB.

The dedupe state is nothing but what was written: a group is its
detections, each tagged with the group's ``lead_id`` and carrying its ledger
entry (what the merge needs: place, position, score, picture), plus, once it
is a lead, its ``lead`` point (status, team, claim). A box's seq state is its highest stored ``seq`` and its open
``box_gap`` points. Because points and acknowledgements go together, a
gateway restarted after a crash knows exactly what the broker will not send
again, and a redelivered message finds its detection id already in a ledger.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.dedupe.leads import Lead, LedgerEntry, MergePolicies, restored_lead
from gateway.dedupe.seqgaps import Gap, parse_ranges
from gateway.store.influx import InfluxClient, quote_ident
from gateway.store.schema import LEDGER_COLUMNS, NS_PER_MS, LeadEvent, ms_to_ns

log = logging.getLogger(__name__)

IDS_PER_QUERY = 200
SEQ_MEASUREMENTS = ("detection", "sensor", "box_health")


@dataclass(frozen=True, slots=True)
class BoxSeqState:
    box: str
    district: str
    last_seq: int


def load_groups(client: InfluxClient, since_ms: int, until_ms: int | None, policies: MergePolicies,
                known: Callable[[str], bool], districts: Sequence[str] = ()) -> list[Lead]:
    """Groups with a ledger entry in [since_ms, until_ms), complete, except those ``known`` already.

    With ``districts``, only groups with detections from those districts.
    """
    merge_gap_ms = int(policies.largest_gap_s * 1000)
    rows = ledger_rows(client, since_ms, until_ms, districts)
    by_lead: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("lead_id") and not known(row["lead_id"]):
            by_lead[row["lead_id"]].append(row)
    incomplete = [lead_id for lead_id, entries in by_lead.items()
                  if until_ms is not None or _may_reach_before(entries, since_ms, merge_gap_ms)]
    for lead_id, entries in _ledgers(client, incomplete).items():
        by_lead[lead_id] = entries
    lead_rows = _lead_points(client, list(by_lead))
    return [_group(lead_id, entries, lead_rows.get(lead_id), policies) for lead_id, entries in by_lead.items()]


def ledger_rows(client: InfluxClient, since_ms: int, until_ms: int | None,
                districts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The stored detections in [since_ms, until_ms) with their ledger entries (``LEDGER_COLUMNS``)."""
    window = f"time >= {ms_to_ns(since_ms)}" + (f" AND time < {ms_to_ns(until_ms)}" if until_ms else "")
    return client.query_all(f"SELECT {LEDGER_COLUMNS} FROM {quote_ident('detection')} "
                            f"WHERE {window}{_district_filter(districts)}")


def _may_reach_before(entries: list[dict[str, Any]], since_ms: int, merge_gap_ms: int) -> bool:
    """Could this group have entries before ``since_ms`` that the window missed?

    A group's entries are never more than one merge gap apart, so a group whose
    earliest entry in the window is a gap or more after its start is complete;
    positions ``n`` with holes betray the rest.
    """
    earliest = min(row["time"] for row in entries) // NS_PER_MS
    positions = sorted(row["n"] for row in entries)
    return earliest < since_ms + merge_gap_ms or positions != list(range(1, len(positions) + 1))


def _ledgers(client: InfluxClient, lead_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in _chunks(lead_ids):
        for row in client.query_all(f"SELECT {LEDGER_COLUMNS} FROM {quote_ident('detection')} "
                                    f"WHERE {_id_filter(chunk)}"):
            found[row["lead_id"]].append(row)
    return found


def _lead_points(client: InfluxClient, lead_ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(lead_ids):
        for row in client.query_all(f"SELECT * FROM {quote_ident('lead')} WHERE {_id_filter(chunk)}"):
            found[row["lead_id"]] = row
    return found


def _id_filter(lead_ids: list[str]) -> str:
    # Lead ids are "L" and hex digits, so they need no escaping inside the regex.
    return f"{quote_ident('lead_id')} =~ /^(?:{'|'.join(lead_ids)})$/"


def _district_filter(districts: Sequence[str]) -> str:
    """An InfluxQL condition on the district tag, or nothing for all districts."""
    # District names match the contract's NAME_PATTERN (a-z, 0-9, _ and -): nothing to escape in a regex.
    return f" AND {quote_ident('district')} =~ /^(?:{'|'.join(districts)})$/" if districts else ""


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), IDS_PER_QUERY):
        yield items[start:start + IDS_PER_QUERY]


def _group(lead_id: str, rows: list[dict[str, Any]], lead_row: dict[str, Any] | None,
           policies: MergePolicies) -> Lead:
    entries = [_entry(row) for row in rows]
    first = rows[0]
    lead = restored_lead(lead_id, first["category"], first["district"], entries)
    if lead_row is not None:
        lead.status = lead_row.get("status") or "open"
        lead.team = lead_row.get("team")
        lead.route = lead_row.get("route")
        lead.claimed_by = lead_row.get("claimed_by")
        lead.outcome = lead_row.get("outcome")
    elif len(entries) >= policies.for_(lead.category, lead.district).min_detections:
        lead.status = "open"
    return lead


def _entry(row: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        detection_id=row["detection_id"], ts=row["time"] // NS_PER_MS, box=row["box"], camera=row["camera"],
        zone=row["zone"], rule=row["rule"], distance_m=row["distance_m"], gap_s=row["gap_s"], n=row["n"],
        lat=row["lat"], lon=row["lon"], score=row["score"], evidence=row.get("evidence"))


def load_box_seqs(client: InfluxClient, since_ms: int, districts: Sequence[str] = ()) -> list[BoxSeqState]:
    """Each box's highest stored seq over the seq-carrying measurements (of ``districts``, if given)."""
    best: dict[str, BoxSeqState] = {}
    for measurement in SEQ_MEASUREMENTS:
        rows = client.query(f"SELECT max({quote_ident('seq')}) FROM {quote_ident(measurement)} "
                            f"WHERE time >= {ms_to_ns(since_ms)}{_district_filter(districts)} "
                            f"GROUP BY {quote_ident('box')}, "
                            f"{quote_ident('district')}")
        for row in rows:
            current = best.get(row["box"])
            if current is None or row["max"] > current.last_seq:
                best[row["box"]] = BoxSeqState(row["box"], row["district"], row["max"])
    return list(best.values())


def load_open_gaps(client: InfluxClient, since_ms: int, districts: Sequence[str] = ()) -> list[Gap]:
    rows = client.query_all(f"SELECT * FROM {quote_ident('box_gap')} "
                            f"WHERE time >= {ms_to_ns(since_ms)}{_district_filter(districts)}")
    gaps = []
    for row in rows:
        if row.get("status") != "open":
            continue
        gaps.append(Gap(row["box"], row["district"], row["from_seq"], row["to_seq"], row["time"] // NS_PER_MS,
                        parse_ranges(row.get("ranges", ""))))
    return gaps


@dataclass(frozen=True, slots=True)
class SeenEvent:
    lead_id: str
    time_ns: int
    event: LeadEvent


def events_since(client: InfluxClient, since_ms: int) -> list[SeenEvent]:
    """Case-staff changes written at or after ``since_ms``, oldest first."""
    rows = client.query_all(f"SELECT * FROM {quote_ident('lead_event')} WHERE time >= {ms_to_ns(since_ms)}")
    events = [SeenEvent(row["lead_id"], row["time"], LeadEvent(
        row.get("event", ""), row.get("from_status", ""), row.get("to_status", ""), row.get("by", ""),
        row.get("at", row["time"] // NS_PER_MS), row.get("outcome"), row.get("note"))) for row in rows]
    return sorted(events, key=lambda e: e.time_ns)
