"""Class-aware non-maximum suppression on pixel boxes."""

from __future__ import annotations

import numpy as np


def intersection_areas(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Area shared by one box with each of many, boxes as x1, y1, x2, y2."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one box against many, boxes as x1, y1, x2, y2."""
    inter = intersection_areas(box, others)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept, best first; boxes of different classes never suppress each other."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    # Shifting each class to its own region of the plane keeps classes apart.
    offset = (float(boxes.max()) + 1.0) * class_ids.astype(np.float64)[:, None]
    shifted = boxes.astype(np.float64) + offset
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(shifted[best], shifted[rest]) <= iou]
    return np.asarray(keep, dtype=np.int64)
