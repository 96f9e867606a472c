"""A small tracker: stable ids across frames, tolerant of short misses, with a stationary flag.

Each track predicts where its box is now from its recent velocity, and
detections are matched to those predictions by IoU, greedily and per class.
At a few frames per second a walking person moves most of a box width
between frames; without the prediction their boxes would not overlap.

A track is stationary once its foot point (bottom-centre) has stayed within
``stationary_drift`` box heights of where it settled for ``stationary_s``:
measured in box heights, so a person far from the camera and one close to it
are judged alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import TrackerConfig
from edge.detections import Detections, foot_points
from edge.nms import pairwise_iou

VELOCITY_SMOOTHING = 0.5
LINGER_S = 1.0     # seconds on one spot before a slow track counts as lingering


@dataclass
class IouTracker:
    """Greedy same-class IoU matching against predicted boxes; a track survives ``max_missing_s`` unmatched.

    Tracks are kept as parallel arrays, one row per track, so following and
    predicting them is a handful of array operations per frame.
    """

    iou_threshold: float = 0.2
    max_missing_s: float = 3.0
    max_missing_by_class: dict[int, float] = field(default_factory=dict)
    stationary_s: float = 5.0
    stationary_drift: float = 0.25
    _ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    _boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    _last_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    _velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))  # px/s of the centre
    _settled_at: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))  # foot point
    _settled_s: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    _next_id: int = 1

    @classmethod
    def from_config(cls, config: TrackerConfig, max_missing_by_class: dict[int, float] | None = None) -> IouTracker:
        return cls(iou_threshold=config.iou_threshold, max_missing_s=config.max_missing_s,
                   max_missing_by_class=dict(max_missing_by_class or {}), stationary_s=config.stationary_s,
                   stationary_drift=config.stationary_drift)

    def reconfigure(self, config: TrackerConfig) -> None:
        """New matching and ageing thresholds; the tracks go on under their ids."""
        self.iou_threshold, self.max_missing_s = config.iou_threshold, config.max_missing_s
        self.stationary_s, self.stationary_drift = config.stationary_s, config.stationary_drift

    def update(self, detections: Detections, t_s: float) -> Detections:
        """Return the same detections with track ids and stationary flags; unmatched ones start new tracks."""
        self._drop_lost(t_s)
        rows = np.full(len(detections), -1, dtype=np.int64)
        matched = self._match(detections, t_s)
        if matched:
            track_rows, det_rows = (np.asarray(m, dtype=np.int64) for m in zip(*matched))
            self._follow(track_rows, detections.xyxy[det_rows], t_s)
            rows[det_rows] = track_rows
        new = np.flatnonzero(rows < 0)
        if len(new):
            rows[new] = self._start(detections.xyxy[new], detections.class_ids[new], t_s)
        return detections.with_tracks(self._ids[rows], t_s - self._settled_s[rows] >= self.stationary_s)

    def live_track_ids(self) -> set[int]:
        return set(self._ids.tolist())

    def live_boxes(self, class_ids: set[int], max_speed: float | None = None) -> np.ndarray:
        """Last boxes of the live tracks of these classes, missed ones included.

        ``max_speed``: only tracks seen just now that have been seen on one spot for
        a second and move slower than this many box heights per second (a new
        track's speed is not known yet, a lost one's place is stale).
        """
        rows = np.zeros(len(self._classes), dtype=bool)
        for class_id in class_ids:      # one or two classes: cheaper than np.isin
            rows |= self._classes == class_id
        if max_speed is not None:
            heights = np.maximum(self._boxes[:, 3] - self._boxes[:, 1], 1.0)
            rows &= np.hypot(self._velocity[:, 0], self._velocity[:, 1]) < max_speed * heights
            now = self._last_seen.max(initial=0.0)
            rows &= (now - self._last_seen <= LINGER_S / 2) & (self._last_seen - self._settled_s >= LINGER_S)
        return self._boxes[rows]

    def _drop_lost(self, t_s: float) -> None:
        if not len(self._ids):
            return
        allowed = np.full(len(self._ids), self.max_missing_s)
        for class_id, seconds in self.max_missing_by_class.items():
            allowed[self._classes == class_id] = seconds
        self._keep_rows(t_s - self._last_seen <= allowed)

    def _keep_rows(self, rows: np.ndarray) -> None:
        if rows.all():          # the usual frame: every track still alive, nothing to copy
            return
        self._ids, self._classes, self._boxes = self._ids[rows], self._classes[rows], self._boxes[rows]
        self._last_seen, self._velocity = self._last_seen[rows], self._velocity[rows]
        self._settled_at, self._settled_s = self._settled_at[rows], self._settled_s[rows]

    def _follow(self, rows: np.ndarray, boxes: np.ndarray, t_s: float) -> None:
        dt = t_s - self._last_seen[rows]
        moving = dt > 0
        if moving.any():
            old, new = self._boxes[rows[moving]], boxes[moving]
            moved = (new[:, :2] + new[:, 2:] - old[:, :2] - old[:, 2:]) / 2 / dt[moving, None]
            self._velocity[rows[moving]] = (VELOCITY_SMOOTHING * self._velocity[rows[moving]]
                                            + (1 - VELOCITY_SMOOTHING) * moved)
        self._boxes[rows] = boxes
        self._last_seen[rows] = t_s
        feet = foot_points(boxes)
        drift = np.hypot(*(feet - self._settled_at[rows]).T)
        resettled = drift > self.stationary_drift * np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        self._settled_at[rows[resettled]] = feet[resettled]
        self._settled_s[rows[resettled]] = t_s

    def _start(self, boxes: np.ndarray, class_ids: np.ndarray, t_s: float) -> np.ndarray:
        """Start a track per box; return their rows."""
        first_row = len(self._ids)
        new_ids = np.arange(self._next_id, self._next_id + len(boxes), dtype=np.int64)
        self._next_id += len(boxes)
        self._settled_at = np.concatenate([self._settled_at, foot_points(boxes).astype(np.float32)])
        self._settled_s = np.concatenate([self._settled_s, np.full(len(boxes), t_s)])
        self._ids = np.concatenate([self._ids, new_ids])
        self._classes = np.concatenate([self._classes, class_ids.astype(np.int32)])
        self._boxes = np.concatenate([self._boxes, boxes.astype(np.float32)])
        self._last_seen = np.concatenate([self._last_seen, np.full(len(boxes), t_s)])
        self._velocity = np.concatenate([self._velocity, np.zeros((len(boxes), 2), dtype=np.float32)])
        return np.arange(first_row, len(self._ids), dtype=np.int64)

    def _match(self, detections: Detections, t_s: float) -> list[tuple[int, int]]:
        """(track row, detection row) pairs, greedily best IoU first, between predicted boxes and same-class detections."""
        if not len(self._ids) or not len(detections):
            return []
        shifts = self._velocity * (t_s - self._last_seen)[:, None].astype(np.float32)
        predicted = self._boxes + np.concatenate([shifts, shifts], axis=1)
        ious = pairwise_iou(predicted, detections.xyxy)
        same_class = self._classes[:, None] == detections.class_ids[None, :]
        ious[~same_class | (ious < self.iou_threshold)] = 0.0
        matched = []
        for flat in np.argsort(-ious, axis=None).tolist():
            row, det_row = divmod(flat, ious.shape[1])
            if ious[row, det_row] <= 0.0:
                break
            matched.append((row, det_row))
            ious[row, :] = 0.0
            ious[:, det_row] = 0.0
        return matched
