"""Case staff's side of a lead: look at it, claim it, close it.

Every change writes the lead point again (same tags and time, so InfluxDB
overwrites the changed fields and keeps the rest) together with a
``lead_event`` audit point. The running gateway reads ``lead_event`` to learn
about changes (``gateway.store.history.events_since``), so a closed lead takes no more detections.

Transitions: open -> claimed -> closed, or open -> closed. Nothing leaves
``closed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.store.influx import InfluxClient, quote_ident, quote_string
from gateway.store.lineprotocol import Point
from gateway.store.schema import LEAD_FIELDS, LEDGER_COLUMNS, LeadEvent, lead_event_point

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


def read_lead(client: InfluxClient, lead_id: str) -> LeadRecord:
    if not LEAD_ID_PATTERN.fullmatch(lead_id):
        raise CaseworkError(f"no lead {lead_id!r}: lead ids look like L followed by 11 hex digits")
    rows = client.query(f"SELECT * FROM {quote_ident('lead')} WHERE {quote_ident('lead_id')} = "
                        f"{quote_string(lead_id)} GROUP BY *")
    if not rows:
        raise CaseworkError(f"no lead {lead_id}")
    row = rows[0]
    tags = {key: row[key] for key in ("lead_id", "category", "district", "zone") if row.get(key)}
    fields = {key: row[key] for key in LEAD_FIELDS if row.get(key) is not None}
    return LeadRecord(lead_id, tags, fields, row["time"])


def read_ledger(client: InfluxClient, lead_id: str) -> list[dict[str, Any]]:
    rows = client.query_all(f"SELECT {LEDGER_COLUMNS} FROM {quote_ident('detection')} WHERE "
                            f"{quote_ident('lead_id')} = {quote_string(lead_id)}")
    return sorted(rows, key=lambda row: row.get("n", 0))


def read_events(client: InfluxClient, lead_id: str) -> list[dict[str, Any]]:
    return client.query_all(f"SELECT * FROM {quote_ident('lead_event')} WHERE {quote_ident('lead_id')} = "
                            f"{quote_string(lead_id)}")


def claim(client: InfluxClient, lead_id: str, by: str, now_ms: int) -> LeadEvent:
    lead = read_lead(client, lead_id)
    if lead.status not in CLAIMABLE:
        holder = f" by {lead.fields['claimed_by']}" if lead.fields.get("claimed_by") else ""
        raise CaseworkError(f"lead {lead_id} is {lead.status}{holder}; only an open lead can be claimed")
    event = LeadEvent("claimed", lead.status, "claimed", by, now_ms)
    _write_change(client, lead, event, {"status": "claimed", "claimed_by": by})
    return event


def close(client: InfluxClient, lead_id: str, outcome: str, by: str, note: str | None, now_ms: int) -> LeadEvent:
    if outcome not in OUTCOMES:
        raise CaseworkError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    lead = read_lead(client, lead_id)
    if lead.status not in CLOSABLE:
        raise CaseworkError(f"lead {lead_id} is already {lead.status} (outcome "
                            f"{lead.fields.get('outcome', '-')}); a closed lead cannot change")
    event = LeadEvent("closed", lead.status, "closed", by, now_ms, outcome, note or None)
    fields: dict[str, Any] = {"status": "closed", "outcome": outcome}
    if note:
        fields["note"] = note
    _write_change(client, lead, event, fields)
    return event


def _write_change(client: InfluxClient, lead: LeadRecord, event: LeadEvent, fields: dict[str, Any]) -> None:
    lead_point = Point("lead", lead.tags, {**fields, "updated_at": event.at_ms}, lead.time_ns)
    client.write([lead_point, lead_event_point(lead.lead_id, event)])
