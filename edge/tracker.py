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

VELOCITY_SMOOTHING = 0.5


@dataclass
class _Track:
    track_id: int
    class_id: int
    box: np.ndarray
    last_seen_s: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float32))  # px/s of the centre

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
        """Greedy matching, best IoU first, between predicted track boxes and same-class detections."""
        if not self._tracks or not len(detections):
            return []
        boxes = np.stack([t.box for t in self._tracks])
        shifts = np.stack([t.velocity for t in self._tracks]) * (
            t_s - np.array([t.last_seen_s for t in self._tracks], dtype=np.float32))[:, None]
        predicted = boxes + np.concatenate([shifts, shifts], axis=1)
        ious = pairwise_iou(predicted, detections.xyxy)
        same_class = np.asarray([t.class_id for t in self._tracks])[:, None] == detections.class_ids[None, :]
        ious[~same_class | (ious < self.iou_threshold)] = 0.0
        matched = []
        for flat in np.argsort(-ious, axis=None):
            track_index, det_index = divmod(int(flat), ious.shape[1])
            if ious[track_index, det_index] <= 0.0:
                break
            matched.append((det_index, self._tracks[track_index]))
            ious[track_index, :] = 0.0
            ious[:, det_index] = 0.0
        return matched


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): an (N, M) matrix."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
