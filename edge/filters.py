"""Object filters: per label, per camera, overridden per zone (score, size, shape, masks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import ObjectFilter
from edge.detections import Detections
from edge.zones import Zone, polygon_contains


@dataclass(frozen=True)
class LabelFilters:
    """Filters of one camera, with its zones' overrides, for frames of one size."""

    camera: dict[str, ObjectFilter]
    zones: list[Zone]
    width: int
    height: int

    def for_object(self, label: str, foot: np.ndarray) -> ObjectFilter | None:
        for zone in self.zones:
            override = zone.config.filters.get(label)
            if override is not None and zone.contains(foot[None])[0]:
                return override
        return self.camera.get(label)

    def apply(self, detections: Detections) -> Detections:
        """Keep the detections every applicable filter lets through."""
        if not len(detections) or not (self.camera or any(z.config.filters for z in self.zones)):
            return detections
        feet = detections.foot_points()
        frame_area = float(self.width * self.height)
        keep = np.ones(len(detections), dtype=bool)
        for i in range(len(detections)):
            rule = self.for_object(detections.label_of(i), feet[i])
            if rule is not None:
                keep[i] = self._passes(rule, detections.xyxy[i], float(detections.scores[i]), feet[i], frame_area)
        return detections[keep]

    def threshold_for(self, label: str, foot: np.ndarray) -> float:
        rule = self.for_object(label, foot)
        return 0.0 if rule is None else rule.threshold

    def _passes(self, rule: ObjectFilter, box: np.ndarray, score: float, foot: np.ndarray, frame_area: float) -> bool:
        width, height = float(box[2] - box[0]), float(box[3] - box[1])
        area = width * height / frame_area
        ratio = width / height if height > 0 else float("inf")
        if score < rule.min_score or not (rule.min_area <= area <= rule.max_area):
            return False
        if not (rule.min_ratio <= ratio <= rule.max_ratio):
            return False
        scale = np.array([self.width, self.height], dtype=np.float64)
        return not any(polygon_contains(np.asarray(mask) * scale, foot[None])[0] for mask in rule.masks)
