"""A small tracker: stable ids across frames, tolerant of short misses.

Each track predicts where its box is now from its recent velocity, and
detections are matched to those predictions by IoU, greedily and per class.
At a few frames per second a walking person moves most of a box width
between frames; without the prediction their boxes would not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.detections import Detections
from edge.nms import box_iou

VELOCITY_SMOOTHING = 0.5


@dataclass
class _Track:
    track_id: int
    class_id: int
    box: np.ndarray
    last_seen_s: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float32))  # px/s of the centre

    def predicted(self, t_s: float) -> np.ndarray:
        shift = self.velocity * (t_s - self.last_seen_s)
        return self.box + np.concatenate([shift, shift])

    def follow(self, box: np.ndarray, t_s: float) -> None:
        dt = t_s - self.last_seen_s
        if dt > 0:
            moved = (box[:2] + box[2:] - self.box[:2] - self.box[2:]) / 2 / dt
            self.velocity = VELOCITY_SMOOTHING * self.velocity + (1 - VELOCITY_SMOOTHING) * moved
        self.box = box.copy()
        self.last_seen_s = t_s


@dataclass
class IouTracker:
    """Greedy same-class IoU matching against predicted boxes; a track survives ``max_missing_s`` unmatched."""

    iou_threshold: float = 0.2
    max_missing_s: float = 3.0
    max_missing_by_class: dict[int, float] = field(default_factory=dict)
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def update(self, detections: Detections, t_s: float) -> Detections:
        """Return the same detections with track ids; unmatched ones start new tracks."""
        self._tracks = [t for t in self._tracks
                        if t_s - t.last_seen_s <= self.max_missing_by_class.get(t.class_id, self.max_missing_s)]
        ids = np.full(len(detections), -1, dtype=np.int64)
        for det_index, track in self._match(detections, t_s):
            track.follow(detections.xyxy[det_index], t_s)
            ids[det_index] = track.track_id
        for det_index in np.flatnonzero(ids < 0):
            track = _Track(self._next_id, int(detections.class_ids[det_index]),
                           detections.xyxy[det_index].copy(), t_s)
            self._next_id += 1
            self._tracks.append(track)
            ids[det_index] = track.track_id
        return detections.with_tracks(ids)

    def live_track_ids(self) -> set[int]:
        return {t.track_id for t in self._tracks}

    def live_boxes(self, class_ids: set[int]) -> np.ndarray:
        """Last boxes of the live tracks of these classes, missed ones included."""
        boxes = [t.box for t in self._tracks if t.class_id in class_ids]
        return np.stack(boxes) if boxes else np.zeros((0, 4), dtype=np.float32)

    def _match(self, detections: Detections, t_s: float) -> list[tuple[int, _Track]]:
        candidates = []
        for track in self._tracks:
            same_class = np.flatnonzero(detections.class_ids == track.class_id)
            if len(same_class) == 0:
                continue
            ious = box_iou(track.predicted(t_s), detections.xyxy[same_class])
            for det_index, iou in zip(same_class, ious):
                if iou >= self.iou_threshold:
                    candidates.append((float(iou), int(det_index), track))
        candidates.sort(key=lambda c: -c[0])
        matched, used_dets, used_tracks = [], set(), set()
        for _, det_index, track in candidates:
            if det_index in used_dets or track.track_id in used_tracks:
                continue
            used_dets.add(det_index)
            used_tracks.add(track.track_id)
            matched.append((det_index, track))
        return matched
