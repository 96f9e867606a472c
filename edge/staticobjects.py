"""Class-agnostic left-object finder: things that appeared in the scene and then stayed.

Two background models run side by side on a small grey copy of each frame.
The long-term one remembers the empty scene (started from the median of the
first frames, then learning slowly); the short-term one follows the last few
seconds. A pixel that differs from the long-term scene but not from the
short-term one belongs to something that arrived and stopped moving: a bag,
a mattress, a pile of junk the detector may have no class for. Blobs covered
by a person or vehicle are not objects left behind and are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.config import StaticObjectConfig
from edge.nms import pairwise_intersections, pairwise_iou
from edge.thumbnail import Thumbnail


@dataclass(frozen=True)
class StaticBlob:
    xyxy: tuple[float, float, float, float]   # pixels of the full frame
    score: float


def _overlap_fraction(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area covered by each of ``others``."""
    return pairwise_intersections(box[None], others)[0] / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


@dataclass
class StaticObjectFinder:
    config: StaticObjectConfig
    _long: np.ndarray | None = None
    _short: np.ndarray | None = None
    _warmup: list[np.ndarray] = field(default_factory=list)
    _started_s: float | None = None
    _last_s: float = 0.0
    _scale: float = 1.0

    def update(self, small: Thumbnail, t_s: float, movers: np.ndarray,
               boosters: np.ndarray, booster_scores: np.ndarray) -> list[StaticBlob]:
        """Static blobs in this frame.

        ``movers``: boxes of people and vehicles (live tracks included) whose
        area is not a left object. ``boosters``: boxes of labels that make a
        blob more likely to be dumped waste, with their scores.
        """
        grey = small.grey
        self._scale = small.scale
        if self._started_s is None:
            self._started_s = t_s
        if self._long is None:
            self._warm_up(grey, t_s)
            return []
        dt = max(t_s - self._last_s, 1e-3)
        self._last_s = t_s
        threshold = self.config.diff_threshold
        differs_long = cv2.absdiff(grey, self._long) > threshold
        differs_short = cv2.absdiff(grey, self._short) > threshold
        static = (differs_long & ~differs_short).astype(np.uint8)
        static = cv2.morphologyEx(static, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        static = cv2.morphologyEx(static, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        self._learn(grey, dt, static)
        return self._blobs(static, movers, boosters, booster_scores)

    def _warm_up(self, grey: np.ndarray, t_s: float) -> None:
        """Collect frames for a while; their median is a scene without passers-by."""
        spacing = self.config.warmup_s / 10
        if not self._warmup or t_s - self._last_s >= spacing:
            self._warmup.append(grey)
            self._last_s = t_s
        if t_s - self._started_s >= self.config.warmup_s and len(self._warmup) >= 3:
            self._long = np.median(np.stack(self._warmup), axis=0).astype(np.float32)
            self._short = grey.copy()
            self._warmup.clear()

    def _learn(self, grey: np.ndarray, dt: float, static: np.ndarray) -> None:
        short_rate = 1 - math.exp(-dt / self.config.short_tau_s)
        long_rate = 1 - math.exp(-dt / self.config.long_tau_s)
        cv2.accumulateWeighted(grey, self._short, short_rate)
        # Where something has come to rest the long-term scene is frozen, so the
        # object stays visible until it is removed (then the pixels match again).
        cv2.accumulateWeighted(grey, self._long, long_rate, mask=(static == 0).view(np.uint8))

    def _widened(self, boxes: np.ndarray) -> np.ndarray:
        size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        return boxes + size * self.config.mover_margin * np.array([-1, -1, 1, 1], dtype=np.float32)

    def _blobs(self, static: np.ndarray, movers: np.ndarray, boosters: np.ndarray,
               booster_scores: np.ndarray) -> list[StaticBlob]:
        components = static_components(static)
        share = components[:, 4] / (static.shape[0] * static.shape[1])
        components = components[(share >= self.config.min_area) & (share <= self.config.max_area)]
        movers = self._widened(movers)
        blobs = []
        for x, y, w, h, _ in components:
            box = np.array([x, y, x + w, y + h], dtype=np.float32) * self._scale
            if len(movers) and _overlap_fraction(box, movers).max() > self.config.mover_overlap:
                continue
            score = self.config.base_score
            if len(boosters):
                ious = pairwise_iou(box[None], boosters)[0]
                if ious.max() > 0.2:
                    score = max(score, float(booster_scores[ious.argmax()]))
            blobs.append(StaticBlob(tuple(float(v) for v in box), score))
        return blobs


def static_components(static: np.ndarray) -> np.ndarray:
    """x, y, width, height and pixel count of each 8-connected blob of a 0/1 map.

    Labelling only the rectangle that holds every set pixel gives the same
    blobs for a fraction of the cost: a static map is mostly empty.
    """
    if not cv2.countNonZero(static):
        return np.zeros((0, 5), dtype=np.int32)
    x0, y0, width, height = cv2.boundingRect(static)
    count, _, stats, _ = cv2.connectedComponentsWithStats(static[y0:y0 + height, x0:x0 + width], connectivity=8)
    stats = stats[1:count, :5].copy()
    stats[:, 0] += x0
    stats[:, 1] += y0
    return stats
