"""InfluxDB schema v2: how messages and leads become points, and how leads are read back.

All points are written with nanosecond timestamps. Event times on the wire are
milliseconds; a detection's point sits at ``ts`` plus ``seq mod 10^6`` ns so
two detections of one box in the same millisecond never overwrite each other.
See docs/contract.md for the measurements, tags and fields.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from contract import NAME_PATTERN, Detection, Health, SensorReading
from gateway.dedupe.leads import Lead, LedgerEntry
from gateway.dedupe.seqgaps import Gap, format_ranges
from gateway.store.lineprotocol import Point

PRECISION = "ns"
NS_PER_MS = 1_000_000
REJECTED_PAYLOAD_CHARS = 2048
# A lead's ledger, read from its detections: stored name -> the name ``gateway leads show`` prints.
LEDGER_NAMES = {"id": "detection_id", **{name: name for name in (
    "n", "rule", "distance_m", "gap_s", "lat", "lon", "score", "evidence", "box", "camera", "zone", "category",
    "district", "lead_id", "verify")}}
BBOX_FIELDS = ("x1", "y1", "x2", "y2")
DETECTION_TAGS = ("box", "district", "camera", "category", "zone", "label", "lead_id")
LEAD_FIELDS = ("status", "detections", "verify", "unverified", "evidence_altered", "chain_broken", "score", "first_seen", "last_seen", "lat", "lon", "boxes", "evidence",
               "team", "route", "claimed_by", "outcome", "note", "updated_at", "opened_at", "dispatched_at",
               "on_scene_at", "resolved_at", "closed_at", "site_photo", "overdue", "merged_into", "split_from", "split_out")
# What a lead_event may say beyond who changed what: the team and officer dispatched to, the site photo,
# the other lead of a merge or split, the detection split out, the clock that ran over.
EVENT_DETAILS = ("team", "assignee", "photo", "other", "detection", "clock")
_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message refused by the contract (or a point by InfluxDB), kept as a dead letter: why, and the raw bytes."""

    topic: str
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class LeadEvent:
    """A case-staff change of a lead, as kept in ``lead_event``."""

    event: str           # dispatched / on_scene / resolved / closed / merged / split / overdue (claimed: older data)
    from_status: str
    to_status: str
    by: str
    at_ms: int
    outcome: str | None = None
    note: str | None = None
    details: dict[str, str] | None = None   # EVENT_DETAILS


def ms_to_ns(ms: int) -> int:
    return ms * NS_PER_MS


def detection_point(d: Detection, lead: Lead, entry: LedgerEntry) -> Point:
    """A detection with its ledger entry: the lead it joined (``lead_id`` tag), its position ``n`` in
    the group, the rule that merged it and the distance and gap it was merged at.

    The detection's own fields hold the rest of the entry (id, place, position, score, picture).
    """
    fields: dict[str, Any] = {
        "id": d.id, "seq": d.seq, "event": d.event, "score": float(d.score),
        "x1": float(d.bbox[0]), "y1": float(d.bbox[1]), "x2": float(d.bbox[2]), "y2": float(d.bbox[3]),
        "track": d.track, "dwell_s": float(d.dwell_s), "lat": float(d.lat), "lon": float(d.lon),
        "model": d.model, "config": d.config, "n": entry.n, "rule": entry.rule,
        "distance_m": float(entry.distance_m), "gap_s": float(entry.gap_s),
    }
    if d.evidence_sha256:
        fields["evidence"] = d.evidence_sha256
    if entry.verify is not None:
        fields["verify"] = entry.verify
    tags = {"box": d.box, "district": d.district, "camera": d.camera, "category": d.category,
            "zone": d.zone, "label": d.label, "lead_id": lead.lead_id}
    return Point("detection", tags, fields, ms_to_ns(d.ts) + d.seq % NS_PER_MS)


def lead_point(lead: Lead, *, with_status: bool) -> Point:
    """The gateway's view of a lead.

    ``status`` is written only when the lead opens: after that it belongs to
    case staff (``gateway.desk.casework``), and the gateway must never undo a claim
    or a close by writing its own older idea of it.
    """
    fields: dict[str, Any] = {
        "detections": lead.detections, "score": float(lead.score),
        "first_seen": lead.first_seen, "last_seen": lead.last_seen,
        "lat": float(lead.lat), "lon": float(lead.lon), "boxes": ",".join(sorted(lead.boxes)),
    }
    if with_status:
        # The lead's clocks start when it opens: the event time of the detection that made it a lead.
        fields = {"status": lead.status, "opened_at": lead.last_seen, **fields}
    if lead.team:
        fields["team"] = lead.team
    if lead.route:
        fields["route"] = lead.route
    if lead.evidence_sha256:
        fields["evidence"] = lead.evidence_sha256
    # Verification (gateway.ingest.verify): how many of its detections no seal vouched for.
    if lead.checked:
        fields["verify"] = "unverified" if lead.unverified else "verified"
        fields["unverified"] = lead.unverified
    if lead.evidence_altered:
        fields["evidence_altered"] = lead.evidence_altered
    if lead.chain_broken:
        fields["chain_broken"] = ",".join(lead.chain_broken)
    return Point("lead", lead_tags(lead), fields, ms_to_ns(lead.anchor_ts))


def lead_tags(lead: Lead) -> dict[str, str]:
    return {"lead_id": lead.lead_id, "category": lead.category, "district": lead.district, "zone": lead.zone}


def lead_update_point(tags: dict[str, str], fields: dict[str, Any], time_ns: int) -> Point:
    """Case staff's change of a lead: the same series and time as the lead point, so only ``fields`` change."""
    return Point("lead", tags, fields, time_ns)


def detection_copy_point(row: dict[str, Any], lead_id: str, fields: dict[str, Any]) -> Point:
    """A stored detection written again into another lead (a merge or a split): the same point under the
    other lead's ``lead_id`` tag, with its new ledger entry (``n``, ``rule``, ...). The original stays."""
    tags = {name: row[name] for name in DETECTION_TAGS if row.get(name) is not None}
    kept = {name: value for name, value in row.items()
            if name not in DETECTION_TAGS and name != "time" and value is not None}
    return Point("detection", {**tags, "lead_id": lead_id}, {**kept, **fields}, row["time"])


def lead_event_point(lead_id: str, event: LeadEvent) -> Point:
    fields: dict[str, Any] = {"event": event.event, "from_status": event.from_status, "to_status": event.to_status,
                              "by": event.by, "at": event.at_ms}
    if event.outcome:
        fields["outcome"] = event.outcome
    if event.note:
        fields["note"] = event.note
    for key, value in (event.details or {}).items():
        if key not in EVENT_DETAILS:
            raise ValueError(f"lead_event has no detail {key!r}")
        fields[key] = value
    # Two changes in one millisecond stay two points.
    offset = int.from_bytes(os.urandom(3), "big") % NS_PER_MS
    return Point("lead_event", {"lead_id": lead_id}, fields, ms_to_ns(event.at_ms) + offset)


def gap_point(gap: Gap) -> Point:
    """A box's seq gap; written again (same point) whenever late messages fill part of it."""
    fields: dict[str, Any] = {"from_seq": gap.from_seq, "to_seq": gap.to_seq, "missing": gap.missing,
                              "status": "open" if gap.is_open else "closed",
                              "ranges": format_ranges(gap.missing_ranges), "policy": gap.policy,
                              "backfilled": gap.backfilled}
    return Point("box_gap", {"box": gap.box, "district": gap.district}, fields,
                 ms_to_ns(gap.opened_ms) + gap.from_seq % NS_PER_MS)


def evidence_point(box: str, district: str, detection_id: str, sha256: str, size: int, received_ms: int,
                   serial: int) -> Point:
    fields = {"detection_id": detection_id, "sha256": sha256, "bytes": size}
    return Point("evidence", {"box": box, "district": district}, fields,
                 ms_to_ns(received_ms) + serial % NS_PER_MS)


def box_evidence_point(box: str, district: str, used: int, budget: int, total_used: int, total_budget: int,
                       refused: int, now_ms: int) -> Point:
    """A box's evidence on disk against its budget, and the pictures refused for a full budget since start."""
    fields = {"used_bytes": used, "budget_bytes": budget, "total_used_bytes": total_used,
              "total_budget_bytes": total_budget, "refused": refused}
    return Point("box_evidence", {"box": box, "district": district}, fields, ms_to_ns(now_ms))


def health_point(h: Health) -> Point:
    """A health message as one point whose field names can never collide and whose types never change.

    Each kind of field has its own shape, and the parts a box names (cameras, sensors, counters, spool
    classes) sit between dots, which no name may hold (``NAME_PATTERN``, counter names): ``camera.{name}.fps``
    is a float and ``serial.{sensor}.counter.{name}`` an integer, whatever the names are, and neither can
    equal another field's name. The fixed fields (``seq``, ``spool_depth``, ...) hold no dot.
    """
    fields: dict[str, Any] = {"seq": h.seq, "uptime_s": float(h.uptime_s), "config": h.config,
                              "spool_depth": h.spool_depth, "spool_oldest_s": float(h.spool_oldest_s)}
    for name, cam in h.cameras.items():
        fields[f"camera.{name}.state"] = cam.state
        fields[f"camera.{name}.fps"] = float(cam.fps)
        fields[f"camera.{name}.detector_ms"] = float(cam.detector_ms)
        if cam.reason is not None:
            fields[f"camera.{name}.reason"] = cam.reason
    for kind, count in (h.spool_dropped or {}).items():
        fields[f"spool_dropped.{kind}"] = int(count)
    for index, port in enumerate(h.serial or []):
        # A port path is no field name; the port is named after its first sensor (a sensorless one by its place).
        prefix = f"serial.{port.sensors[0]}" if port.sensors else f"serial.#{index}"
        fields[f"{prefix}.state"] = port.state
        for counter, count in port.counters.items():
            fields[f"{prefix}.counter.{counter}"] = int(count)
    if h.position is not None:
        fields.update(lat=float(h.position.lat), lon=float(h.position.lon), position_ts=h.position.ts)
    if h.last_seq is not None:
        fields["last_seq"] = h.last_seq
    if h.delivery is not None:
        fields["delivery"] = h.delivery
    if h.dropped_seqs:
        fields["dropped_seqs"] = ",".join(f"{d.kind}:{d.from_seq}-{d.to_seq}" for d in h.dropped_seqs)
    return Point("box_health", {"box": h.box, "district": h.district}, fields, ms_to_ns(h.ts))


def box_chain_point(box: str, district: str, verified: int, unverified: int, failed: int, breaks: int, seals: int,
                    last_break: str, now_ms: int) -> Point:
    """A box's chain verification since the gateway started: messages verified, passed or refused unverified,
    failed, breaks of its chain (and the last one's reason), valid seals."""
    fields: dict[str, Any] = {"verified": verified, "unverified": unverified, "failed": failed, "breaks": breaks,
                              "seals": seals}
    if last_break:
        fields["last_break"] = visible(last_break)
    return Point("box_chain", {"box": box, "district": district}, fields, ms_to_ns(now_ms))


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
    """Dead-letter record: the reason and the (truncated) raw payload, never parsed data.

    The ``box`` tag is set only when the topic names a well-formed box, so no
    topic can smuggle anything into the tag set; text fields carry control
    characters as visible escapes.
    """
    parts = rejected.topic.split("/")
    box = parts[2] if len(parts) > 2 and parts[0] == "city" and _NAME_RE.fullmatch(parts[2]) else ""
    payload = rejected.payload[:REJECTED_PAYLOAD_CHARS].decode("utf-8", errors="backslashreplace")
    fields = {"reason": visible(rejected.reason[:4096]), "topic": visible(rejected.topic[:512]),
              "payload": visible(payload), "bytes": len(rejected.payload)}
    return Point("rejected", {"box": box}, fields, ms_to_ns(received_ms) + serial % NS_PER_MS)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7F) if c not in (0x09, 0x0A)}


def visible(text: str) -> str:
    """Control characters other than tab and newline as ``\\xNN``."""
    return text.translate(_CONTROL)


def now_ms() -> int:
    return int(time.time() * 1000)


def site_photo_point(lead_id: str, sha256: str, kind: str, size: int, by: str, at_ms: int) -> Point:
    """A site photo uploaded to resolve a lead, kept like evidence: on disk by its sha256, recorded here."""
    offset = int.from_bytes(os.urandom(3), "big") % NS_PER_MS
    return Point("site_photo", {"lead_id": lead_id}, {"sha256": sha256, "type": kind, "bytes": size, "by": by},
                 ms_to_ns(at_ms) + offset)
