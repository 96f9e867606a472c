"""Motion gating: is anything moving, so that the detector needs to run?

A running average of small grey frames is the recent scene; pixels that
differ from it by more than ``threshold`` are motion, unless a mask covers
them. Still scenes are the point of vending and dumping, so the pipeline also
re-runs the detector every ``recheck_s`` when nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.config import MotionConfig
from edge.thumbnail import Thumbnail

LEARNING_RATE = 0.25


@dataclass
class MotionDetector:
    config: MotionConfig
    _average: np.ndarray | None = None
    _mask: np.ndarray | None = None

    def update(self, small: Thumbnail) -> float:
        """Share of the (unmasked) frame that moved since the recent scene."""
        grey = small.grey
        if self._average is None:
            self._average = grey.copy()
            self._mask = self._build_mask(grey.shape)
            return 0.0
        moving = cv2.absdiff(grey, self._average) > self.config.threshold
        cv2.accumulateWeighted(grey, self._average, LEARNING_RATE)
        moving &= self._mask
        return float(moving.sum()) / max(1, int(self._mask.sum()))

    def is_moving(self, fraction: float) -> bool:
        return fraction >= self.config.min_area

    def _build_mask(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.ones(shape, dtype=np.uint8)
        for polygon in self.config.masks:
            points = (np.asarray(polygon) * [shape[1], shape[0]]).astype(np.int32)
            cv2.fillPoly(mask, [points], 0)
        return mask.astype(bool)
