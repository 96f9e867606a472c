"""Camera sources: frames read through OpenCV, sampled at the configured rate."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """A camera source cannot be opened."""


@dataclass(frozen=True)
class Frame:
    camera: str
    index: int          # frame number in the source
    t_s: float          # seconds since the source started (video time for files)
    ts_ms: int          # event time, UTC epoch milliseconds
    image: np.ndarray   # BGR uint8

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


def _open_capture(source: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not capture.isOpened():
        raise CameraError(f"cannot open camera source {source!r}")
    return capture


def file_frames(camera: str, source: str, fps: float, start_ms: int | None = None,
                realtime: bool = False, loop: bool = False) -> Iterator[Frame]:
    """Frames of a video file at ``fps``.

    Event time is the start time plus the position in the video, so dwell
    times measured on a recording match those of the live scene. With
    ``realtime`` the file plays like a live camera: frames come no faster
    than the clock, and when processing falls behind, the frames in between
    are skipped rather than queued. With ``loop`` the file starts again at
    its end and time runs on.
    """
    start_ms = int(time.time() * 1000) if start_ms is None else start_ms
    started = time.monotonic()
    step_s = 1.0 / fps
    next_t = 0.0
    offset_s = 0.0
    index = 0
    while True:
        capture = _open_capture(source)
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        local = 0
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                t_s = offset_s + local / source_fps
                local += 1
                index += 1
                if realtime:
                    next_t = max(next_t, time.monotonic() - started - step_s)
                if t_s + 1e-9 < next_t:
                    continue
                next_t += step_s
                if realtime:
                    time.sleep(max(0.0, t_s - (time.monotonic() - started)))
                yield Frame(camera, index - 1, t_s, start_ms + int(t_s * 1000), image)
        finally:
            capture.release()
        log.info("camera.ended camera=%s frames=%d", camera, index)
        if not loop or local == 0:
            return
        offset_s += local / source_fps
