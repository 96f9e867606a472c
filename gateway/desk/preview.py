"""What other dedupe settings would make of the detections already stored, before anyone changes them.

The detections of a time window are replayed in event-time order twice,
each time into an empty lead book: under the current settings and under the
candidate ones. Both replays see the same detections in the same way (no
lead closed by case staff, nothing from before the window), so what differs
between them is the settings' doing. Per category and district: the
detections, the leads, and the groups that never became a lead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from contract import Detection
from gateway.dedupe.leads import LeadBook, MergePolicies
from gateway.store.base import LeadStore
from gateway.store.schema import NS_PER_MS


@dataclass(frozen=True, slots=True)
class Difference:
    category: str
    district: str
    detections: int
    leads_now: int
    leads_then: int
    unopened_now: int       # groups that stayed below min_detections
    unopened_then: int

    def as_dict(self) -> dict:
        return asdict(self)


def stored_detections(store: LeadStore, since_ms: int, until_ms: int,
                      districts: Sequence[str] = ()) -> list[Detection]:
    """The detections stored in [since_ms, until_ms), with what dedupe looks at, in event-time order."""
    rows = sorted(store.ledger_rows(since_ms, until_ms, districts), key=lambda row: row["time"])
    # Built without validation: these passed the contract when they arrived, and only dedupe's fields are read.
    return [Detection.model_construct(
        id=row["detection_id"], box=row["box"], district=row["district"], seq=0, ts=row["time"] // NS_PER_MS,
        camera=row["camera"], category=row["category"], label="", score=row["score"], bbox=(0.0, 0.0, 0.0, 0.0),
        zone=row["zone"], track=0, dwell_s=0.0, lat=row["lat"], lon=row["lon"], model="", config="",
        evidence_sha256=row.get("evidence")) for row in rows]


def replay(detections: Iterable[Detection], policies: MergePolicies) -> LeadBook:
    book = LeadBook(policies)
    for det in detections:
        book.add(det)
    return book


def compare(detections: list[Detection], current: MergePolicies, candidate: MergePolicies) -> list[Difference]:
    """Per category and district, sorted: what the current and the candidate settings make of ``detections``."""
    seen = Counter((det.category, det.district) for det in detections)
    now, then = _tally(replay(detections, current)), _tally(replay(detections, candidate))
    places = sorted(set(seen) | set(now) | set(then))
    return [Difference(category, district, seen[(category, district)],
                       now[(category, district)]["leads"], then[(category, district)]["leads"],
                       now[(category, district)]["unopened"], then[(category, district)]["unopened"])
            for category, district in places]


def _tally(book: LeadBook) -> defaultdict[tuple[str, str], Counter]:
    counts: defaultdict[tuple[str, str], Counter] = defaultdict(Counter)
    for group in book.groups():
        counts[(group.category, group.district)]["unopened" if group.status == "candidate" else "leads"] += 1
    return counts
