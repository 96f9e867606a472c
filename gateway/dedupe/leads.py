"""Dedupe: repeated detections of one incident become one lead, with a ledger of why.

Everything here runs on event time (the detections' ``ts``), so a replayed or
late stream lands in the same leads as the live one. A detection joins a
group of the same category when it comes from the same box, camera and zone,
or lies within ``merge_radius_m``; and its time is within ``merge_gap_s`` of
the group's span. A group becomes a lead once it holds ``min_detections``.
Each of the three may differ by category and by district (``MergePolicies``);
a detection is merged by the policy of its own category and district, and a
group opens by the policy of its category and district.
A lead that case staff resolved or closed takes no more detections: a
detection near it starts a new group.

The book holds only what it is given; rebuilding it after a restart, and
reading back groups for late detections, is ``gateway.ingest.restore``'s job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from contract import Detection
from gateway.dedupe.geo import Grid, haversine_m

__all__ = ["Lead", "LeadBook", "LedgerEntry", "Merge", "MergePolicies", "MergePolicy", "haversine_m", "lead_id_for"]

ACTIVE = ("open", "dispatched", "on_scene", "claimed")   # claimed: leads from before dispatching
FINISHED = ("resolved", "closed")


@dataclass(frozen=True)
class MergePolicy:
    merge_radius_m: float = 30.0
    merge_gap_s: float = 900.0
    min_detections: int = 2


Scope = tuple[str | None, str | None]   # (category, district); None stands for any


class MergePolicies:
    """The merge policy of each category and district.

    ``overrides`` maps (category, None), (None, district) and (category,
    district) to changed fields of ``default``; the more specific wins, in
    that order: default, category, district, category within district.
    """

    def __init__(self, default: MergePolicy = MergePolicy(),
                 overrides: Mapping[Scope, Mapping[str, float | int]] | None = None) -> None:
        self.default = default
        self.overrides = dict(overrides or {})
        self._resolved: dict[tuple[str, str], MergePolicy] = {}
        every = [default, *(replace(default, **changes) for changes in self.overrides.values())]
        self.largest_radius_m = max(policy.merge_radius_m for policy in every)
        self.largest_gap_s = max(policy.merge_gap_s for policy in every)

    def for_(self, category: str, district: str) -> MergePolicy:
        policy = self._resolved.get((category, district))
        if policy is None:
            policy = self.default
            for scope in ((category, None), (None, district), (category, district)):
                if scope in self.overrides:
                    policy = replace(policy, **self.overrides[scope])
            self._resolved[(category, district)] = policy
        return policy


class LedgerEntry(NamedTuple):
    """One detection in a group: where it was, and by which rule it joined.

    Named tuples, not frozen dataclasses, for the values made for every detection: as immutable, and built in
    a fifth of the time (a frozen dataclass sets each field through ``object.__setattr__``).
    """

    detection_id: str
    ts: int
    box: str
    camera: str
    zone: str
    rule: str            # opened / same_zone / distance
    distance_m: float
    gap_s: float
    n: int = 1           # position in the group, 1 for the detection that started it
    lat: float = 0.0
    lon: float = 0.0
    score: float = 0.0
    evidence: str | None = None   # sha256 the detection names
    verify: str | None = None     # verified / unverified / failed (gateway.ingest.verify); None: from before it

    @property
    def place(self) -> tuple[str, str, str]:
        return self.box, self.camera, self.zone


@dataclass(eq=False, slots=True)
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
    evidence_sha256: str | None = None   # best picture that arrived and matches its detection
    evidence_score: float = -1.0
    team: str | None = None
    route: str | None = None
    claimed_by: str | None = None
    outcome: str | None = None
    # Lists, not sets: a lead has few boxes and places, and a small set takes four times the memory.
    boxes: list[str] = field(default_factory=list)
    places: list[tuple[str, str, str]] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    sum_lat: float = 0.0
    sum_lon: float = 0.0
    checked: int = 0                      # detections a verifying gateway marked (verified or not)
    unverified: int = 0                   # of those, the ones no seal of their box vouched for
    evidence_altered: str | None = None   # a detection whose picture arrived other than it named (this run)
    chain_broken: list[str] = field(default_factory=list)   # its boxes whose chain broke (this run)

    @property
    def detections(self) -> int:
        return len(self.ledger)

    @property
    def is_open_lead(self) -> bool:
        return self.status in ACTIVE


class Merge(NamedTuple):
    """What one detection did: which group it joined and whether that group just became a lead."""

    lead: Lead
    entry: LedgerEntry
    opened: bool


def lead_id_for(category: str, first_detection_id: str) -> str:
    digest = hashlib.sha256(f"{category}/{first_detection_id}".encode()).hexdigest()
    return f"L{digest[:11]}"


Verified = Callable[[str], bool]


def _never(_: str) -> bool:
    return False


class LeadBook:
    """Groups and leads by category; ``add`` returns the merge, or None for a repeated id."""

    def __init__(self, policies: MergePolicies | MergePolicy = MergePolicy()) -> None:
        self.policies = policies if isinstance(policies, MergePolicies) else MergePolicies(policies)
        self._by_id: dict[str, Lead] = {}
        self._by_detection: dict[str, Lead] = {}
        self._grids: dict[str, Grid[Lead]] = {}
        self._by_place: dict[tuple[str, str, str, str], list[Lead]] = {}

    # ------------------------------------------------------------------ queries

    def seen(self, detection_id: str) -> bool:
        return detection_id in self._by_detection

    def get(self, lead_id: str) -> Lead | None:
        return self._by_id.get(lead_id)

    def entry_for(self, detection_id: str) -> tuple[Lead, LedgerEntry] | None:
        lead = self._by_detection.get(detection_id)
        if lead is None:
            return None
        return lead, next(entry for entry in reversed(lead.ledger) if entry.detection_id == detection_id)

    def leads(self) -> list[Lead]:
        return [lead for lead in self._by_id.values() if lead.status != "candidate"]

    def groups(self) -> list[Lead]:
        return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    # ------------------------------------------------------------------ merging

    def add(self, det: Detection, verified: Verified = _never, mark: str | None = None) -> Merge | None:
        if det.id in self._by_detection:
            return None
        best = self._best_group(det, self.policies.for_(det.category, det.district))
        if best is None:
            lead = Lead(lead_id_for(det.category, det.id), det.category, det.district, det.zone, det.ts, det.ts,
                        det.ts, det.lat, det.lon)
            self._by_id[lead.lead_id] = lead
            rule, distance, gap_s = "opened", 0.0, 0.0
        else:
            lead, rule, distance, gap_s = best
        entry = LedgerEntry(det.id, det.ts, det.box, det.camera, det.zone, rule, round(distance, 1), round(gap_s, 1),
                            lead.detections + 1, det.lat, det.lon, det.score, det.evidence_sha256, mark)
        was_lead = lead.is_open_lead
        self._absorb(lead, entry, verified)
        if lead.status == "candidate" and lead.detections >= self.policies.for_(lead.category,
                                                                                 lead.district).min_detections:
            lead.status = "open"
        return Merge(lead, entry, opened=lead.is_open_lead and not was_lead)

    def _best_group(self, det: Detection, policy: MergePolicy) -> tuple[Lead, str, float, float] | None:
        place = (det.box, det.camera, det.zone)
        same_place = self._by_place.get((det.category, *place))
        if same_place:
            best = self._best_of(det, place, same_place, policy)
            if best is not None:
                return best  # a same-zone merge ranks before any by distance, so the grid has nothing better
        grid = self._grids.get(det.category)
        return self._best_of(det, place, grid.near(det.lat, det.lon), policy) if grid else None

    @staticmethod
    def _best_of(det: Detection, place: tuple[str, str, str], candidates: Iterable[Lead],
                 policy: MergePolicy) -> tuple[Lead, str, float, float] | None:
        gap_limit_ms = policy.merge_gap_s * 1000
        best: tuple[tuple, Lead, str, float, float] | None = None
        for lead in candidates:
            if lead.status in FINISHED:
                continue
            gap_ms = max(0, det.ts - lead.last_seen, lead.first_seen - det.ts)
            if gap_ms > gap_limit_ms:
                continue
            distance = haversine_m(det.lat, det.lon, lead.lat, lead.lon)
            if place in lead.places:
                rule = "same_zone"
            elif distance <= policy.merge_radius_m:
                rule = "distance"
            else:
                continue
            rank = (rule != "same_zone", distance, gap_ms, lead.lead_id)
            if best is None or rank < best[0]:
                best = (rank, lead, rule, distance, gap_ms / 1000)
        return None if best is None else best[1:]

    def _absorb(self, lead: Lead, entry: LedgerEntry, verified: Verified) -> None:
        lead.ledger.append(entry)
        lead.sum_lat += entry.lat
        lead.sum_lon += entry.lon
        lead.lat = lead.sum_lat / lead.detections
        lead.lon = lead.sum_lon / lead.detections
        lead.first_seen = min(lead.first_seen, entry.ts)
        lead.last_seen = max(lead.last_seen, entry.ts)
        if entry.box not in lead.boxes:
            lead.boxes.append(entry.box)
        place = entry.place
        if place not in lead.places:
            lead.places.append(place)
        lead.score = max(lead.score, entry.score)
        if entry.verify is not None:
            lead.checked += 1
            lead.unverified += entry.verify != "verified"
        if entry.evidence and verified(entry.evidence):
            self._consider_evidence(lead, entry)
        self._by_detection[entry.detection_id] = lead
        self._grid_for(lead.category).put(lead, lead.lat, lead.lon)
        key = (lead.category, *place)
        members = self._by_place.get(key)
        if members is None:
            self._by_place[key] = [lead]
        elif lead not in members:
            members.append(lead)

    def _grid_for(self, category: str) -> Grid[Lead]:
        grid = self._grids.get(category)
        if grid is None:
            grid = self._grids[category] = Grid(self.policies.largest_radius_m)
        return grid

    @staticmethod
    def _consider_evidence(lead: Lead, entry: LedgerEntry) -> bool:
        if entry.score > lead.evidence_score:
            lead.evidence_sha256, lead.evidence_score = entry.evidence, entry.score
            return True
        return False

    def evidence_arrived(self, detection_id: str, sha256: str) -> Lead | None:
        """A picture matching ``detection_id``'s sha256 is stored; the lead, if its best picture changed."""
        found = self.entry_for(detection_id)
        if found is None:
            return None
        lead, entry = found
        if entry.evidence == sha256 and self._consider_evidence(lead, entry):
            return lead
        return None

    # ------------------------------------------------------------------ state from outside

    def restore(self, lead: Lead, verified: Verified = _never) -> bool:
        """Take a group read back from InfluxDB; False if the book already has it."""
        if lead.lead_id in self._by_id:
            return False
        entries = sorted(lead.ledger, key=lambda e: e.n)
        lead.ledger = []
        lead.sum_lat = lead.sum_lon = 0.0
        lead.checked = lead.unverified = 0
        lead.boxes, lead.places = [], []
        self._by_id[lead.lead_id] = lead
        for entry in entries:
            self._absorb(lead, entry, verified)
        return True

    def set_status(self, lead_id: str, status: str, claimed_by: str | None = None,
                   outcome: str | None = None) -> Lead | None:
        """Case staff changed a lead; returns it if the book holds it."""
        lead = self._by_id.get(lead_id)
        if lead is None:
            return None
        lead.status = status
        lead.claimed_by = claimed_by or lead.claimed_by
        lead.outcome = outcome or lead.outcome
        return lead

    def merge(self, source_id: str, target_id: str) -> bool:
        """Case staff merged ``source`` into ``target``: source's entries join target, source is closed.
        True if the book held both."""
        source, target = self._by_id.get(source_id), self._by_id.get(target_id)
        if source is not None:
            source.status = "closed"
        if source is None or target is None or source is target:
            return False
        n = max((entry.n for entry in target.ledger), default=0)
        for entry in sorted(source.ledger, key=lambda e: e.n):
            if self._by_detection.get(entry.detection_id) is source:
                n += 1
                self._absorb(target, entry._replace(n=n, rule="merged"), _never)
        return True

    def split(self, lead_id: str, detection_id: str, new_id: str) -> Lead | None:
        """Case staff split ``detection_id`` out of a lead into a new open lead ``new_id``; the new lead."""
        lead = self._by_id.get(lead_id)
        if lead is None or new_id in self._by_id:
            return None
        entry = next((e for e in lead.ledger if e.detection_id == detection_id), None)
        rest = [e for e in lead.ledger if e.detection_id != detection_id]
        if entry is None or not rest:
            return None
        self._forget(lead)
        lead.ledger = rest
        lead.first_seen = lead.last_seen = rest[0].ts
        lead.score = 0.0
        self.restore(lead)
        new = Lead(new_id, lead.category, lead.district, entry.zone, entry.ts, entry.ts, entry.ts, entry.lat,
                   entry.lon, status="open", team=lead.team, route=f"split:{lead_id}")
        new.ledger = [entry._replace(n=1, rule="split")]
        self.restore(new)
        return new

    def prune(self, cutoff_ms: int) -> int:
        """Forget groups whose last detection is older than ``cutoff_ms``; returns how many."""
        stale = [lead for lead in self._by_id.values() if lead.last_seen < cutoff_ms]
        for lead in stale:
            self._forget(lead)
        return len(stale)

    def _forget(self, lead: Lead) -> None:
        del self._by_id[lead.lead_id]
        grid = self._grids.get(lead.category)
        if grid is not None:
            grid.remove(lead)
        for entry in lead.ledger:
            if self._by_detection.get(entry.detection_id) is lead:
                del self._by_detection[entry.detection_id]
        for place in lead.places:
            members = self._by_place.get((lead.category, *place))
            if members is not None and lead in members:
                members.remove(lead)
                if not members:
                    del self._by_place[(lead.category, *place)]


def restored_lead(lead_id: str, category: str, district: str, entries: Iterable[LedgerEntry]) -> Lead:
    """A bare group around ledger entries read back from InfluxDB; ``LeadBook.restore`` fills it in."""
    ordered = sorted(entries, key=lambda e: e.n)
    first = ordered[0]
    lead = Lead(lead_id, category, district, first.zone, first.ts, first.ts, first.ts, first.lat, first.lon)
    lead.ledger = ordered
    return lead
