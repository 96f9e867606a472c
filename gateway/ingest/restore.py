"""Reading the gateway's dedupe state back from its store.

The dedupe state is nothing but what was written: a group is its
detections, each tagged with the group's ``lead_id`` and carrying its ledger
entry (what the merge needs: place, position, score, picture), plus, once it
is a lead, its ``lead`` point (status, team, claim). Case staff's merges and
splits write detections again under the lead they now belong to; the lead
point says what to leave out (``merged_into``: the whole group, ``split_out``:
those detections). A box's seq state is its
highest stored ``seq`` and its open ``box_gap`` points (``LeadStore.box_seqs``,
``LeadStore.open_gaps``). Because points and acknowledgements go together, a
gateway restarted after a crash knows exactly what the broker will not send
again, and a redelivered message finds its detection id already in a ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from gateway.dedupe.leads import Lead, LedgerEntry, MergePolicies, restored_lead
from gateway.store.base import LeadStore
from gateway.store.schema import NS_PER_MS


def load_groups(store: LeadStore, since_ms: int, until_ms: int | None, policies: MergePolicies,
                known: Callable[[str], bool], districts: Sequence[str] = ()) -> list[Lead]:
    """Groups with a ledger entry in [since_ms, until_ms), complete, except those ``known`` already.

    With ``districts``, only groups with detections from those districts.
    """
    merge_gap_ms = int(policies.largest_gap_s * 1000)
    by_lead: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.ledger_rows(since_ms, until_ms, districts):
        if row.get("lead_id") and not known(row["lead_id"]):
            by_lead[row["lead_id"]].append(row)
    incomplete = [lead_id for lead_id, entries in by_lead.items()
                  if until_ms is not None or _may_reach_before(entries, since_ms, merge_gap_ms)]
    for lead_id, entries in store.ledgers(incomplete).items():
        by_lead[lead_id] = entries
    lead_rows = store.lead_rows(list(by_lead))
    return [_group(lead_id, entries, lead_rows.get(lead_id), policies) for lead_id, entries in by_lead.items()
            if not (lead_rows.get(lead_id) or {}).get("merged_into")]   # its detections live on in the other lead


def load_windows(store: LeadStore, windows: Sequence[tuple[int, int]], policies: MergePolicies,
                 known: Callable[[str], bool], districts: Sequence[str] = ()) -> list[Lead]:
    """Whole groups with a ledger entry in any of the [since_ms, until_ms) windows, except those ``known``:
    the rows of every window in one read, then the ledgers and lead points of the groups found."""
    by_lead: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.ledger_rows_in(windows, districts):
        if row.get("lead_id") and not known(row["lead_id"]):
            by_lead[row["lead_id"]].append(row)
    if not by_lead:
        return []
    for lead_id, entries in store.ledgers(list(by_lead)).items():
        by_lead[lead_id] = entries
    lead_rows = store.lead_rows(list(by_lead))
    return [_group(lead_id, entries, lead_rows.get(lead_id), policies) for lead_id, entries in by_lead.items()]


def _may_reach_before(entries: list[dict[str, Any]], since_ms: int, merge_gap_ms: int) -> bool:
    """Could this group have entries before ``since_ms`` that the window missed?

    A group's entries are never more than one merge gap apart, so a group whose
    earliest entry in the window is a gap or more after its start is complete;
    positions ``n`` with holes betray the rest.
    """
    earliest = min(row["time"] for row in entries) // NS_PER_MS
    positions = sorted(row["n"] for row in entries)
    return earliest < since_ms + merge_gap_ms or positions != list(range(1, len(positions) + 1))


def _group(lead_id: str, rows: list[dict[str, Any]], lead_row: dict[str, Any] | None,
           policies: MergePolicies) -> Lead:
    split_out = set(((lead_row or {}).get("split_out") or "").split(","))
    rows = [row for row in rows if row["detection_id"] not in split_out] or rows
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
        lat=row["lat"], lon=row["lon"], score=row["score"], evidence=row.get("evidence"),
        verify=row.get("verify"))
