"""A small, blurred grey copy of a frame, shared by the motion gate and the left-object finder."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 320


@dataclass(frozen=True)
class Thumbnail:
    grey: np.ndarray     # float32, WIDTH wide, blurred
    scale: float         # frame pixels per thumbnail pixel


def thumbnail(image: np.ndarray) -> Thumbnail:
    height, width = image.shape[:2]
    scale = width / WIDTH
    # A linear resize of the grey frame is several times cheaper than an area resize
    # (or a resize of three channels); the blur afterwards removes the aliasing that
    # would look like motion.
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (WIDTH, max(1, round(height / scale))), interpolation=cv2.INTER_LINEAR)
    return Thumbnail(cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32), scale)
