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

WORK_WIDTH = 240
LEARNING_RATE = 0.25


@dataclass
class MotionDetector:
    config: MotionConfig
    _average: np.ndarray | None = None
    _mask: np.ndarray | None = None

    def update(self, image: np.ndarray) -> float:
        """Share of the (unmasked) frame that moved since the recent scene."""
        grey = self._prepare(image)
        if self._average is None:
            self._average = grey
            self._mask = self._build_mask(grey.shape)
            return 0.0
        moving = cv2.absdiff(grey, self._average) > self.config.threshold
        cv2.accumulateWeighted(grey, self._average, LEARNING_RATE)
        moving &= self._mask
        return float(moving.sum()) / max(1, int(self._mask.sum()))

    def is_moving(self, fraction: float) -> bool:
        return fraction >= self.config.min_area

    @staticmethod
    def _prepare(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        small = cv2.resize(image, (WORK_WIDTH, max(1, round(height * WORK_WIDTH / width))),
                           interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0).astype(np.float32)

    def _build_mask(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.ones(shape, dtype=np.uint8)
        for polygon in self.config.masks:
            points = (np.asarray(polygon) * [shape[1], shape[0]]).astype(np.int32)
            cv2.fillPoly(mask, [points], 0)
        return mask.astype(bool)
