"""InfluxDB schema v1: how messages and leads become points, and how leads are read back.

All points are written with nanosecond timestamps. Event times on the wire are
milliseconds; a detection's point sits at ``ts`` plus ``seq mod 10^6`` ns so
two detections of one box in the same millisecond never overwrite each other.
See docs/contract.md for the measurements, tags and fields.
"""

from __future__ import annotations

import time
from typing import Any

from edge.contract import Detection, Health, SensorReading
from gateway.influx import InfluxClient, quote_ident, quote_string
from gateway.leads import Lead, LedgerEntry
from gateway.lineprotocol import Point
from gateway.validate import Rejected

PRECISION = "ns"
NS_PER_MS = 1_000_000
REJECTED_PAYLOAD_CHARS = 2048
LEAD_FIELDS = ("status", "detections", "score", "first_seen", "last_seen", "lat", "lon", "boxes", "evidence",
               "team", "claimed_by", "outcome", "note")


def ms_to_ns(ms: int) -> int:
    return ms * NS_PER_MS


def detection_point(d: Detection) -> Point:
    fields: dict[str, Any] = {
        "id": d.id, "seq": d.seq, "event": d.event, "score": float(d.score),
        "x1": float(d.bbox[0]), "y1": float(d.bbox[1]), "x2": float(d.bbox[2]), "y2": float(d.bbox[3]),
        "track": d.track, "dwell_s": float(d.dwell_s), "lat": float(d.lat), "lon": float(d.lon),
        "model": d.model, "config": d.config,
    }
    if d.evidence_sha256:
        fields["evidence"] = d.evidence_sha256
    tags = {"box": d.box, "district": d.district, "camera": d.camera, "category": d.category,
            "zone": d.zone, "label": d.label}
    return Point("detection", tags, fields, ms_to_ns(d.ts) + d.seq % NS_PER_MS)


def lead_point(lead: Lead, team: str) -> Point:
    fields: dict[str, Any] = {
        "status": lead.status, "detections": lead.detections, "score": float(lead.score),
        "first_seen": lead.first_seen, "last_seen": lead.last_seen,
        "lat": float(lead.lat), "lon": float(lead.lon), "boxes": ",".join(sorted(lead.boxes)), "team": team,
    }
    if lead.evidence_sha256:
        fields["evidence"] = lead.evidence_sha256
    tags = {"lead_id": lead.lead_id, "category": lead.category, "district": lead.district, "zone": lead.zone}
    return Point("lead", tags, fields, ms_to_ns(lead.anchor_ts))


def ledger_point(lead: Lead, entry: LedgerEntry, seq: int) -> Point:
    """One row of a lead's ledger: which detection joined it and by which rule."""
    fields = {"detection_id": entry.detection_id, "rule": entry.rule, "distance_m": float(entry.distance_m),
              "gap_s": float(entry.gap_s), "box": entry.box, "camera": entry.camera, "zone": entry.zone}
    return Point("lead_ledger", {"lead_id": lead.lead_id}, fields, ms_to_ns(entry.ts) + seq % NS_PER_MS)


def health_point(h: Health) -> Point:
    fields: dict[str, Any] = {"seq": h.seq, "uptime_s": float(h.uptime_s), "config": h.config,
                              "spool_depth": h.spool_depth, "spool_oldest_s": float(h.spool_oldest_s)}
    for name, cam in h.cameras.items():
        fields[f"{name}_state"] = cam.state
        fields[f"{name}_fps"] = float(cam.fps)
        fields[f"{name}_detector_ms"] = float(cam.detector_ms)
    return Point("box_health", {"box": h.box, "district": h.district}, fields, ms_to_ns(h.ts))


def status_point(box: str, district: str, online: bool, received_ms: int) -> Point:
    return Point("box_status", {"box": box, "district": district}, {"online": online}, ms_to_ns(received_ms))


def sensor_point(s: SensorReading) -> Point:
    fields: dict[str, Any] = {k: float(v) for k, v in s.values.items()}
    fields["seq"] = s.seq
    fields["id"] = s.id
    if s.event:
        fields["event"] = s.event
    return Point("sensor", {"box": s.box, "district": s.district, "sensor": s.sensor}, fields,
                 ms_to_ns(s.ts) + s.seq % NS_PER_MS)


def rejected_point(rejected: Rejected, received_ms: int, serial: int) -> Point:
    """Dead-letter record: the reason and the (truncated) raw payload, never parsed data."""
    parts = rejected.topic.split("/")
    box = parts[2] if len(parts) > 2 and parts[0] == "city" else ""
    payload = rejected.payload[:REJECTED_PAYLOAD_CHARS].decode("utf-8", errors="backslashreplace")
    fields = {"reason": rejected.reason[:4096], "topic": rejected.topic[:512], "payload": payload,
              "bytes": len(rejected.payload)}
    return Point("rejected", {"box": box}, fields, ms_to_ns(received_ms) + serial % NS_PER_MS)


# --------------------------------------------------------------------------- reading leads


def list_leads(client: InfluxClient, *, status: str | None = None, category: str | None = None,
               district: str | None = None) -> list[dict[str, Any]]:
    conditions = []
    if category:
        conditions.append(f"{quote_ident('category')} = {quote_string(category)}")
    if district:
        conditions.append(f"{quote_ident('district')} = {quote_string(district)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = client.query(f"SELECT * FROM {quote_ident('lead')}{where} GROUP BY *")
    leads = [_lead_row(row) for row in rows]
    if status:
        leads = [lead for lead in leads if lead["status"] == status]
    return sorted(leads, key=lambda lead: (lead["first_seen"], lead["lead_id"]))


def _lead_row(row: dict[str, Any]) -> dict[str, Any]:
    lead = {key: row.get(key) for key in ("lead_id", "category", "district", "zone", *LEAD_FIELDS)}
    lead["boxes"] = [b for b in (lead.get("boxes") or "").split(",") if b]
    return {k: v for k, v in lead.items() if v is not None or k in ("lead_id", "status")}


def now_ms() -> int:
    return int(time.time() * 1000)
