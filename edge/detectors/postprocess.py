"""Decoded candidates -> the frame's Detections: map back, clip, class-aware NMS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.detections import Detections
from edge.detectors.preprocess import InputTransform
from edge.nms import nms

# NMS is quadratic in its input; a model that scores thousands of boxes above
# the threshold gets its best ones kept, not the box stalled.
MAX_CANDIDATES = 3000
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class Candidates:
    """What a family's decoder found, boxes as x1, y1, x2, y2 in model-input pixels."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def none(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray) -> Candidates:
        return Candidates(self.xyxy[index], self.scores[index], self.class_ids[index])


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    centre, half = boxes[:, :2], boxes[:, 2:4] / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def best_class(class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the best class id and its score."""
    ids = class_scores.argmax(axis=1)
    return ids.astype(np.int32), class_scores[np.arange(len(class_scores)), ids].astype(np.float32)


def to_detections(found: Candidates, transform: InputTransform, frame_size: tuple[int, int],
                  labels: tuple[str, ...], nms_iou: float) -> Detections:
    """Boxes in frame pixels, clipped to the frame, overlaps of one class merged, best first."""
    if len(found) > MAX_CANDIDATES:
        found = found[np.argsort(-found.scores, kind="stable")[:MAX_CANDIDATES]]
    width, height = frame_size
    xyxy = transform.to_frame(found.xyxy)
    np.clip(xyxy, 0, [width, height, width, height], out=xyxy)
    # Boxes wholly in the letterbox padding or off the frame collapse to nothing.
    visible = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    xyxy, found = xyxy[visible], found[visible]
    if len(found) == 0:
        return Detections.empty(labels)
    kept = nms(xyxy, found.scores, found.class_ids, nms_iou)[:MAX_DETECTIONS]
    return Detections(xyxy=xyxy[kept], scores=found.scores[kept].astype(np.float32),
                      class_ids=found.class_ids[kept].astype(np.int32), labels=labels)
