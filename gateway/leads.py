"""Dedupe: repeated detections of one incident become one lead, with a ledger of why.

Everything here runs on event time (the detections' ``ts``), so a replayed or
late stream lands in the same leads as the live one. A detection joins a
group of the same category when it comes from the same box, camera and zone,
or lies within ``merge_radius_m``; and its time is within ``merge_gap_s`` of
the group's span. A group becomes a lead once it holds ``min_detections``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from edge.contract import Detection

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class MergePolicy:
    merge_radius_m: float = 30.0
    merge_gap_s: float = 900.0
    min_detections: int = 2


@dataclass(frozen=True)
class LedgerEntry:
    detection_id: str
    ts: int
    box: str
    camera: str
    zone: str
    rule: str            # opened / same_zone / distance
    distance_m: float
    gap_s: float


@dataclass
class Lead:
    lead_id: str
    category: str
    district: str
    zone: str
    anchor_ts: int           # first_seen when the group started; the lead point's timestamp
    first_seen: int
    last_seen: int
    lat: float
    lon: float
    status: str = "candidate"
    score: float = 0.0
    evidence_sha256: str | None = None
    boxes: set[str] = field(default_factory=set)
    places: set[tuple[str, str, str]] = field(default_factory=set)
    ledger: list[LedgerEntry] = field(default_factory=list)

    @property
    def detections(self) -> int:
        return len(self.ledger)

    @property
    def is_open_lead(self) -> bool:
        return self.status in ("open", "claimed")


@dataclass(frozen=True)
class Merge:
    """What one detection did: which lead it joined and whether that lead just opened."""

    lead: Lead
    entry: LedgerEntry
    opened: bool


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def lead_id_for(first: Detection) -> str:
    digest = hashlib.sha256(f"{first.category}/{first.id}".encode()).hexdigest()
    return f"L{digest[:11]}"


class LeadBook:
    """Groups and leads by category; ``add`` returns the merge, or None for a repeat id."""

    def __init__(self, policy: MergePolicy = MergePolicy()) -> None:
        self.policy = policy
        self._groups: dict[str, list[Lead]] = {}
        self._seen: set[str] = set()

    def seen(self, detection_id: str) -> bool:
        return detection_id in self._seen

    def add(self, det: Detection) -> Merge | None:
        if det.id in self._seen:
            return None
        self._seen.add(det.id)
        place = (det.box, det.camera, det.zone)
        best = self._best_group(det, place)
        if best is None:
            lead = Lead(lead_id_for(det), det.category, det.district, det.zone, det.ts, det.ts, det.ts,
                        det.lat, det.lon)
            self._groups.setdefault(det.category, []).append(lead)
            entry = LedgerEntry(det.id, det.ts, det.box, det.camera, det.zone, "opened", 0.0, 0.0)
        else:
            lead, rule, distance, gap = best
            entry = LedgerEntry(det.id, det.ts, det.box, det.camera, det.zone, rule, round(distance, 1),
                                round(gap, 1))
        was_lead = lead.is_open_lead
        self._absorb(lead, det, place, entry)
        if lead.status == "candidate" and lead.detections >= self.policy.min_detections:
            lead.status = "open"
        return Merge(lead, entry, opened=lead.is_open_lead and not was_lead)

    def _best_group(self, det: Detection, place: tuple[str, str, str]) -> tuple[Lead, str, float, float] | None:
        gap_limit_ms = self.policy.merge_gap_s * 1000
        best: tuple[tuple, Lead, str, float, float] | None = None
        for lead in self._groups.get(det.category, []):
            if lead.status == "closed":
                continue
            if det.ts > lead.last_seen:
                gap_ms = det.ts - lead.last_seen
            elif det.ts < lead.first_seen:
                gap_ms = lead.first_seen - det.ts
            else:
                gap_ms = 0
            if gap_ms > gap_limit_ms:
                continue
            distance = haversine_m(det.lat, det.lon, lead.lat, lead.lon)
            if place in lead.places:
                rule = "same_zone"
            elif distance <= self.policy.merge_radius_m:
                rule = "distance"
            else:
                continue
            rank = (rule != "same_zone", distance, gap_ms)
            if best is None or rank < best[0]:
                best = (rank, lead, rule, distance, gap_ms / 1000)
        return None if best is None else best[1:]

    @staticmethod
    def _absorb(lead: Lead, det: Detection, place: tuple[str, str, str], entry: LedgerEntry) -> None:
        n = lead.detections
        lead.lat = (lead.lat * n + det.lat) / (n + 1)
        lead.lon = (lead.lon * n + det.lon) / (n + 1)
        lead.first_seen = min(lead.first_seen, det.ts)
        lead.last_seen = max(lead.last_seen, det.ts)
        lead.boxes.add(det.box)
        lead.places.add(place)
        lead.ledger.append(entry)
        if det.score >= lead.score:
            lead.score = det.score
            lead.evidence_sha256 = det.evidence_sha256 or lead.evidence_sha256

    def prune(self, now_ms: int) -> int:
        """Forget groups whose span ended more than two merge gaps before ``now_ms``."""
        horizon = now_ms - 2 * self.policy.merge_gap_s * 1000
        dropped = 0
        for category, groups in self._groups.items():
            kept = [g for g in groups if g.last_seen >= horizon]
            dropped += len(groups) - len(kept)
            self._groups[category] = kept
        return dropped

    def leads(self) -> list[Lead]:
        return [g for groups in self._groups.values() for g in groups if g.status != "candidate"]
