"""Zone rules: an object of a watched label that stays put in a zone long enough.

``street_vending`` watches people in ``no_vending`` zones; ``illegal_dumping``
watches objects in ``dumping_hotspot`` zones. An incident goes through
``new`` -> ``update`` (at most every ``update_s``) -> ``end`` (object gone
or moved out of the zone).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median

import numpy as np

from edge.config import DwellRuleConfig, RulesConfig
from contract import Category
from edge.detections import Detections
from edge.zones import Zone


@dataclass(frozen=True)
class RuleHit:
    category: Category
    event: str                     # new / update / end
    zone: Zone
    track_id: int
    label: str
    score: float                   # median of the track's recent scores, plus support
    bbox_px: tuple[float, float, float, float]
    dwell_s: float
    t_s: float
    best: object = None            # what the caller attached to the best-scoring observation
    best_bbox_px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass
class _Stay:
    """One track's uninterrupted stay near one spot of one zone."""

    anchor: np.ndarray             # foot point where the stay began
    since_s: float
    label: str
    scores: deque = field(default_factory=lambda: deque(maxlen=25))
    bbox_px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    reported_s: float | None = None
    last_seen_s: float = 0.0
    support: float = 0.0
    best_score: float = -1.0
    best: object = None
    best_bbox_px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def score(self) -> float:
        return min(1.0, float(median(self.scores)) + self.support)


@dataclass
class DwellRules:
    """Runs the configured dwell rules over one camera's tracked detections."""

    rules: RulesConfig
    zones: list[Zone]
    frame_width: int
    thresholds: Callable[[str, np.ndarray], float] = lambda label, foot: 0.0
    _stays: dict[tuple[str, int], _Stay] = field(default_factory=dict)

    def reconfigure(self, rules: RulesConfig, zones: list[Zone]) -> None:
        """New thresholds and zones; stays in zones that still exist go on."""
        names = {z.name for z in zones}
        self._stays = {key: stay for key, stay in self._stays.items() if key[0] in names}
        self.rules = rules
        self.zones = zones

    def update(self, tracked: Detections, t_s: float, live_tracks: set[int], attach: object = None) -> list[RuleHit]:
        """Hits of this frame; ``attach`` is kept with a stay's best observation (e.g. the frame)."""
        hits: list[RuleHit] = []
        seen: set[tuple[str, int]] = set()
        feet = tracked.foot_points()
        for zone in self.zones:
            category, rule = self.rules.for_zone_type(zone.config.type)
            if not rule.enabled or not len(tracked):
                continue
            in_zone = zone.contains(feet)
            inside = in_zone & tracked.labelled(tuple(rule.labels))
            support = rule.support_boost if (in_zone & tracked.labelled(tuple(rule.support_labels))).any() else 0.0
            for i in np.flatnonzero(inside):
                key = (zone.name, int(tracked.track_ids[i]))
                seen.add(key)
                hit = self._observe(key, zone, category, rule, tracked, i, feet[i], t_s, support, attach)
                if hit:
                    hits.append(hit)
        hits.extend(self._end_stays(seen, live_tracks, t_s))
        return hits

    def _observe(self, key, zone: Zone, category: Category, rule: DwellRuleConfig, tracked: Detections, i: int,
                 foot: np.ndarray, t_s: float, support: float, attach: object) -> RuleHit | None:
        stay = self._stays.get(key)
        drift_limit = rule.stationary_px * self.frame_width
        if stay is None or math.dist(foot, stay.anchor) > drift_limit:
            if stay is not None and stay.reported_s is not None:
                # Moved away from its spot: the reported incident ends, a new stay starts.
                ended = self._hit(category, "end", zone, key[1], stay, t_s)
                self._stays[key] = _Stay(foot.copy(), t_s, tracked.label_of(i))
                return ended
            stay = self._stays[key] = _Stay(foot.copy(), t_s, tracked.label_of(i))
        score = float(tracked.scores[i])
        stay.scores.append(score)
        stay.bbox_px = tuple(float(v) for v in tracked.xyxy[i])
        stay.last_seen_s = t_s
        stay.support = support
        if score + support > stay.best_score:
            stay.best_score, stay.best, stay.best_bbox_px = score + support, attach, stay.bbox_px
        dwell = zone.config.dwell_s or rule.dwell_s
        threshold = max(rule.min_score, self.thresholds(stay.label, foot))
        if t_s - stay.since_s < dwell or median(stay.scores) < threshold:
            return None
        if stay.reported_s is None:
            stay.reported_s = t_s
            return self._hit(category, "new", zone, key[1], stay, t_s)
        if t_s - stay.reported_s >= rule.update_s:
            stay.reported_s = t_s
            return self._hit(category, "update", zone, key[1], stay, t_s)
        return None

    def _end_stays(self, seen: set, live_tracks: set[int], t_s: float) -> list[RuleHit]:
        """A stay ends when its track is gone; a live track missed for a frame keeps it."""
        hits = []
        for key in list(self._stays):
            if key in seen or key[1] in live_tracks:
                continue
            stay = self._stays.pop(key)
            if stay.reported_s is not None:
                zone = next(z for z in self.zones if z.name == key[0])
                category, _ = self.rules.for_zone_type(zone.config.type)
                hits.append(self._hit(category, "end", zone, key[1], stay, t_s))
        return hits

    def finish(self, t_s: float) -> list[RuleHit]:
        """End every reported stay (the source ended)."""
        return self._end_stays(set(), set(), t_s)

    @staticmethod
    def _hit(category: Category, event: str, zone: Zone, track_id: int, stay: _Stay, t_s: float) -> RuleHit:
        return RuleHit(category, event, zone, track_id, stay.label, stay.score(), stay.bbox_px,
                       max(0.0, stay.last_seen_s - stay.since_s), t_s, stay.best, stay.best_bbox_px)
