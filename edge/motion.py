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
    _mask_pixels: int = 1

    def update(self, small: Thumbnail) -> float:
        """Share of the (unmasked) frame that moved since the recent scene."""
        grey = small.grey
        if self._mask is None or self._mask.shape != grey.shape:
            self._mask = self._build_mask(grey.shape)
            self._mask_pixels = max(1, int(np.count_nonzero(self._mask)))
        if self._average is None or self._average.shape != grey.shape:
            self._average = grey.copy()
            return 0.0
        moving = cv2.absdiff(grey, self._average) > self.config.threshold
        cv2.accumulateWeighted(grey, self._average, LEARNING_RATE)
        moving &= self._mask
        return np.count_nonzero(moving) / self._mask_pixels

    def reconfigure(self, config: MotionConfig) -> None:
        """New threshold, area or masks; the recent scene is kept."""
        self.config = config
        self._mask = None

    def is_moving(self, fraction: float) -> bool:
        return fraction >= self.config.min_area

    def _build_mask(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.ones(shape, dtype=np.uint8)
        for polygon in self.config.masks:
            points = (np.asarray(polygon) * [shape[1], shape[0]]).astype(np.int32)
            cv2.fillPoly(mask, [points], 0)
        return mask.astype(bool)
