"""Zone rules: an object of a watched label that stays put in a zone long enough.

``street_vending`` watches people in ``no_vending`` zones; ``illegal_dumping``
watches objects in ``dumping_hotspot`` zones. An incident goes through
``new`` -> ``update`` (at most every ``update_s``) -> ``end`` (object gone,
moved away from its spot, or seen outside the zone for ``leave_s``).

A stay is one track's time near one spot of one zone. It ends when the
track is gone, or is seen off its spot or outside the zone for longer than
``leave_s`` (a foot point jittering over the zone's edge, or a box swollen
for a moment by a passer-by, is not leaving); someone who comes back later
starts a new stay, judged on its own. When the tracker gives a person on the
spot a new id (a passer-by brushed past), the stay of the new id inherits the
old one's time when the old track ends; a stay whose track was lost (the
detector missed the person for a while) is taken up again by a track found
on the same spot within ``regain_s``.
Where the rule asks for ``min_moves``, a stay is only reported once its
object has been seen to move that often since the stay began (see
``edge.liveness``): fixed things the detector takes for people never do.
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


NEAR_SHARE = 0.5   # boxes grown by this share of their size that touch belong to one incident
MIN_HELD_S = 2.0   # a stay seen for less than this is never carried on by another track
HELD_SHARE = 0.4   # nor one whose spot was seen taken for less than this share of its time
MAX_SEEN_STEP_S = 1.0   # a gap between two sightings counts as seen up to this long


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
    since_s: float                 # when the spot was first taken (inherited stays: by an earlier track)
    label: str
    scores: deque = field(default_factory=lambda: deque(maxlen=25))
    bbox_px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    reported_s: float | None = None
    last_seen_s: float = 0.0
    moves: int = 0                 # moves seen since the stay began, across track hand-overs
    track_moves: int = 0           # the current track's own count when last looked at
    away_since_s: float | None = None
    seen_s: float = 0.0            # time someone was seen on the spot since the stay began

    def held(self, t_s: float) -> bool:
        """Was the spot taken most of the time, so a later track may carry the stay on?

        A vendor the detector often misses still is; passers-by who cross a busy
        spot one after another are not.
        """
        return self.seen_s >= max(MIN_HELD_S, HELD_SHARE * (t_s - self.since_s))
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
    _orphans: list[tuple[str, _Stay, float]] = field(default_factory=list)   # zone, stay, when its track ended

    def reconfigure(self, rules: RulesConfig, zones: list[Zone],
                    thresholds: Callable[[str, np.ndarray], float] | None = None) -> None:
        """New thresholds and zones; stays in zones that still exist go on."""
        names = {z.name for z in zones}
        self._stays = {key: stay for key, stay in self._stays.items() if key[0] in names}
        self.rules = rules
        self.zones = zones
        if thresholds is not None:
            self.thresholds = thresholds

    def update(self, tracked: Detections, t_s: float, live_tracks: set[int], attach: object = None,
               moves: dict[int, int] | None = None) -> list[RuleHit]:
        """Hits of this frame; ``attach`` is kept with a stay's best observation (e.g. the frame).

        ``moves``: moves seen so far per track id (``edge.liveness``); None when
        not measured, which skips the rules' ``min_moves`` check.
        """
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
                hit = self._observe(key, zone, category, rule, tracked, i, feet[i], t_s, support, attach, moves)
                if hit:
                    hits.append(hit)
        present = set() if tracked.track_ids is None else set(tracked.track_ids.tolist())
        hits.extend(self._end_stays(seen, live_tracks, t_s, present))
        if self._orphans:
            longest = max(self.rules.street_vending.regain_s, self.rules.illegal_dumping.regain_s)
            self._orphans = [o for o in self._orphans if t_s - o[2] <= longest]
        return hits

    def _observe(self, key, zone: Zone, category: Category, rule: DwellRuleConfig, tracked: Detections, i: int,
                 foot: np.ndarray, t_s: float, support: float, attach: object,
                 moves: dict[int, int] | None) -> RuleHit | None:
        drift_limit = rule.stationary_px * self.frame_width
        track_moves = None if moves is None else moves.get(key[1], 0)
        stay = self._stays.get(key)
        if stay is None:
            stay = self._regain(key, foot, drift_limit, t_s, rule.regain_s, track_moves or 0)
        if stay is not None and math.dist(foot, stay.anchor) > drift_limit:
            # Off its spot: a box swollen by a passer-by for a moment is not moving away.
            if stay.away_since_s is None:
                stay.away_since_s = t_s
            if t_s - stay.away_since_s <= rule.leave_s:
                return None
        if stay is None or math.dist(foot, stay.anchor) > drift_limit:
            fresh = _Stay(foot.copy(), t_s, tracked.label_of(i), track_moves=track_moves or 0)
            if stay is not None and stay.reported_s is not None:
                # Moved away from its spot: the reported incident ends, a new stay starts.
                ended = self._hit(category, "end", zone, key[1], stay, t_s)
                self._stays[key] = fresh
                return ended
            stay = self._stays[key] = fresh
        stay.away_since_s = None
        stay.seen_s += min(t_s - stay.last_seen_s, MAX_SEEN_STEP_S) if stay.last_seen_s else 0.0
        score = float(tracked.scores[i])
        stay.scores.append(score)
        stay.bbox_px = tuple(float(v) for v in tracked.xyxy[i])
        stay.last_seen_s = t_s
        stay.support = support
        if score + support > stay.best_score:
            stay.best_score, stay.best, stay.best_bbox_px = score + support, attach, stay.bbox_px
        dwell = zone.config.dwell_s or rule.dwell_s
        threshold = max(rule.min_score, self.thresholds(stay.label, foot))
        if track_moves is not None:
            stay.moves += max(0, track_moves - stay.track_moves)
            stay.track_moves = track_moves
        if t_s - stay.since_s < dwell or median(stay.scores) < threshold:
            return None
        if track_moves is not None and stay.moves < rule.min_moves:
            return None
        if stay.reported_s is None:
            stay.reported_s = t_s
            if self._reported_nearby(key, stay):
                return None       # more of an incident already reported (a second piece of one dumped heap)
            return self._hit(category, "new", zone, key[1], stay, t_s)
        if t_s - stay.reported_s >= rule.update_s:
            stay.reported_s = t_s
            return self._hit(category, "update", zone, key[1], stay, t_s)
        return None

    def _reported_nearby(self, key: tuple[str, int], stay: _Stay) -> bool:
        """Does a reported stay of the same zone have a box touching this one's (each grown by half its size)?"""
        def grown(box):
            x1, y1, x2, y2 = box
            dx, dy = (x2 - x1) * NEAR_SHARE, (y2 - y1) * NEAR_SHARE
            return x1 - dx, y1 - dy, x2 + dx, y2 + dy

        a = grown(stay.bbox_px)
        for other_key, other in self._stays.items():
            if other_key == key or other_key[0] != key[0] or other.reported_s is None or other is stay:
                continue
            b = grown(other.bbox_px)
            if min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]):
                return True
        return False

    def _regain(self, key: tuple[str, int], foot: np.ndarray, drift_limit: float, t_s: float, regain_s: float,
                track_moves: int) -> _Stay | None:
        """A new track on the spot of a stay whose track was lost less than ``regain_s`` ago takes it over.

        A vendor the detector misses for a few seconds loses the track; when they are
        found again on the same spot, their time there goes on.
        """
        self._orphans = [o for o in self._orphans if t_s - o[2] <= regain_s]
        found = [(math.dist(foot, stay.anchor), n) for n, (zone, stay, _) in enumerate(self._orphans)
                 if zone == key[0] and math.dist(foot, stay.anchor) <= drift_limit and stay.held(t_s)]
        if not found:
            return None
        _, stay, _ = self._orphans.pop(min(found)[1])
        stay.track_moves = track_moves
        self._stays[key] = stay
        return stay

    def _adopt(self, key: tuple[str, int], stay: _Stay, drift_limit: float, t_s: float) -> bool:
        """Hand a stay whose track is gone to the stay closest to its spot, if any is on it.

        A passer-by who brushes past a vendor can leave the tracker with a new id for
        the vendor; when the old track ends, the vendor's time on the spot, its moves and
        whether it was reported carry over to the new track's stay.
        """
        heirs = [(math.dist(other.anchor, stay.anchor), other_key) for other_key, other in self._stays.items()
                 if other_key[0] == key[0] and other_key != key and math.dist(other.anchor, stay.anchor) <= drift_limit]
        if not heirs or not stay.held(t_s):
            return False
        heir = self._stays[min(heirs)[1]]
        heir.anchor = stay.anchor      # the spot stays where it began: hand-overs never walk it along a queue
        heir.since_s = min(heir.since_s, stay.since_s)
        heir.moves += stay.moves
        heir.seen_s += stay.seen_s
        if heir.reported_s is None:
            heir.reported_s = stay.reported_s
        if stay.best_score > heir.best_score:
            heir.best_score, heir.best, heir.best_bbox_px = stay.best_score, stay.best, stay.best_bbox_px
        return True

    def _end_stays(self, seen: set, live_tracks: set[int], t_s: float, present: set[int]) -> list[RuleHit]:
        """End the stays whose track is gone, or was seen outside the zone for longer than ``leave_s``.

        A live track missed by the detector for a moment keeps its stay.
        """
        hits = []
        for key in list(self._stays):
            if key in seen:
                continue
            zone = next(z for z in self.zones if z.name == key[0])
            category, rule = self.rules.for_zone_type(zone.config.type)
            stay = self._stays[key]
            if key[1] in present:
                if t_s - stay.last_seen_s <= rule.leave_s:
                    continue
            elif key[1] in live_tracks:
                continue
            del self._stays[key]
            if key[1] not in present:
                if self._adopt(key, stay, rule.stationary_px * self.frame_width, t_s):
                    continue
                if stay.held(t_s):
                    self._orphans.append((key[0], stay, t_s))
            if stay.reported_s is not None:
                hits.append(self._hit(category, "end", zone, key[1], stay, t_s))
        return hits

    def finish(self, t_s: float) -> list[RuleHit]:
        """End every reported stay (the source ended)."""
        return self._end_stays(set(), set(), t_s, set())

    @staticmethod
    def _hit(category: Category, event: str, zone: Zone, track_id: int, stay: _Stay, t_s: float) -> RuleHit:
        return RuleHit(category, event, zone, track_id, stay.label, stay.score(), stay.bbox_px,
                       max(0.0, stay.last_seen_s - stay.since_s), t_s, stay.best, stay.best_bbox_px)
