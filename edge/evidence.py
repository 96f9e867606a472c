"""Evidence pictures: the frame of an incident with its box drawn, as JPEG."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

MAX_EVIDENCE_WIDTH = 1280


@dataclass(frozen=True)
class Evidence:
    jpeg: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpeg).hexdigest()


def annotate(image: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], str]],
             polygon: np.ndarray | None = None) -> np.ndarray:
    """A copy of the frame with the zone outline and labelled boxes drawn."""
    out = image.copy()
    if polygon is not None:
        cv2.polylines(out, [polygon.astype(np.int32)], True, (0, 200, 255), 2)
    for (x1, y1, x2, y2), text in boxes:
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, (0, 0, 255), 2)
        cv2.putText(out, text, (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1, cv2.LINE_AA)
    return out


def encode_jpeg(image: np.ndarray, quality: int) -> Evidence:
    if image.shape[1] > MAX_EVIDENCE_WIDTH:
        scale = MAX_EVIDENCE_WIDTH / image.shape[1]
        image = cv2.resize(image, (MAX_EVIDENCE_WIDTH, int(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return Evidence(buf.tobytes())
