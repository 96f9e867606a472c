"""Case staff's side of a lead: look at it, claim it, close it.

Every change writes the lead point again (same tags and time, so InfluxDB
overwrites the changed fields and keeps the rest) together with a
``lead_event`` audit point. The running gateway reads ``lead_event`` to learn
about changes (``LeadStore.events_since``), so a closed lead takes no more detections.

Transitions: open -> claimed -> closed, or open -> closed. Nothing leaves
``closed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.store.base import LeadStore
from gateway.store.schema import LEAD_FIELDS, LeadEvent, lead_event_point, lead_update_point

OUTCOMES = ("confirmed", "rejected", "duplicate", "resolved")
LEAD_ID_PATTERN = re.compile(r"^L[0-9a-f]{11}$")
CLAIMABLE = ("open",)
CLOSABLE = ("open", "claimed")


class CaseworkError(Exception):
    """An unknown lead or a change its status does not allow; the message says which."""


@dataclass(frozen=True)
class LeadRecord:
    lead_id: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time_ns: int

    @property
    def status(self) -> str:
        return self.fields.get("status", "open")


def list_leads(store: LeadStore, *, status: str | None = None, category: str | None = None,
               district: str | None = None) -> list[dict[str, Any]]:
    """The leads, of one status, category or district if given, oldest first."""
    leads = [_lead_row(row) for row in store.leads(category, district)]
    if status:
        leads = [lead for lead in leads if lead["status"] == status]
    return sorted(leads, key=lambda lead: (lead["first_seen"], lead["lead_id"]))


def _lead_row(row: dict[str, Any]) -> dict[str, Any]:
    lead = {key: row.get(key) for key in ("lead_id", "category", "district", "zone", *LEAD_FIELDS)}
    lead["boxes"] = [b for b in (lead.get("boxes") or "").split(",") if b]
    return {k: v for k, v in lead.items() if v is not None or k in ("lead_id", "status")}


def read_lead(store: LeadStore, lead_id: str) -> LeadRecord:
    if not LEAD_ID_PATTERN.fullmatch(lead_id):
        raise CaseworkError(f"no lead {lead_id!r}: lead ids look like L followed by 11 hex digits")
    row = store.lead(lead_id)
    if row is None:
        raise CaseworkError(f"no lead {lead_id}")
    tags = {key: row[key] for key in ("lead_id", "category", "district", "zone") if row.get(key)}
    fields = {key: row[key] for key in LEAD_FIELDS if row.get(key) is not None}
    return LeadRecord(lead_id, tags, fields, row["time"])


def read_ledger(store: LeadStore, lead_id: str) -> list[dict[str, Any]]:
    return store.ledger(lead_id)


def read_events(store: LeadStore, lead_id: str) -> list[dict[str, Any]]:
    return store.lead_events(lead_id)


def claim(store: LeadStore, lead_id: str, by: str, now_ms: int) -> LeadEvent:
    lead = read_lead(store, lead_id)
    if lead.status not in CLAIMABLE:
        holder = f" by {lead.fields['claimed_by']}" if lead.fields.get("claimed_by") else ""
        raise CaseworkError(f"lead {lead_id} is {lead.status}{holder}; only an open lead can be claimed")
    event = LeadEvent("claimed", lead.status, "claimed", by, now_ms)
    _write_change(store, lead, event, {"status": "claimed", "claimed_by": by})
    return event


def close(store: LeadStore, lead_id: str, outcome: str, by: str, note: str | None, now_ms: int) -> LeadEvent:
    if outcome not in OUTCOMES:
        raise CaseworkError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    lead = read_lead(store, lead_id)
    if lead.status not in CLOSABLE:
        raise CaseworkError(f"lead {lead_id} is already {lead.status} (outcome "
                            f"{lead.fields.get('outcome', '-')}); a closed lead cannot change")
    event = LeadEvent("closed", lead.status, "closed", by, now_ms, outcome, note or None)
    fields: dict[str, Any] = {"status": "closed", "outcome": outcome}
    if note:
        fields["note"] = note
    _write_change(store, lead, event, fields)
    return event


def _write_change(store: LeadStore, lead: LeadRecord, event: LeadEvent, fields: dict[str, Any]) -> None:
    store.write([lead_update_point(lead.tags, {**fields, "updated_at": event.at_ms}, lead.time_ns),
                 lead_event_point(lead.lead_id, event)])
