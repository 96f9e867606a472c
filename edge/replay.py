"""A recording through one camera's rule pipeline, as the box would run it.

Shared by `edge replay` (print the incidents) and `edge eval` (score them
against ground truth): both must judge exactly what a box would report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.camera import file_frames
from edge.config import BoxConfig, CameraConfig, ConfigError
from edge.detectors import Detector
from edge.pipeline import CameraPipeline
from edge.rules import RuleHit
from edge.zones import ZoneOutsideFrame


@dataclass(frozen=True)
class Replay:
    hits: list[RuleHit]
    frames: int
    duration_s: float            # video time covered (last frame time + one frame)
    mean_detector_ms: float


def camera_of(config: BoxConfig, name: str | None, source: str) -> CameraConfig:
    """The camera ``name`` of the config (the first when None); ConfigError when there is none."""
    if not config.cameras:
        raise ConfigError(source, ["cameras: this box has no camera to replay"])
    wanted = name or config.cameras[0].name
    camera = next((c for c in config.cameras if c.name == wanted), None)
    if camera is None:
        known = ", ".join(c.name for c in config.cameras)
        raise ConfigError(source, [f"cameras: no camera named {wanted!r} (the config has {known})"])
    return camera


def replay(video: Path, config: BoxConfig, camera: CameraConfig, detector: Detector,
           progress: Callable[[float], None] | None = None) -> Replay:
    """Every rule hit the camera's pipeline reports on ``video``, the end of the recording included.

    ``progress`` is called now and then with the share of the video done.
    Raises CameraError when the video cannot be read, ZoneOutsideFrame
    (naming the camera) when a pixel zone does not fit its frames.
    """
    pipeline = CameraPipeline(camera, config.rules, detector, config.static_objects, config.tracker)
    frames = file_frames(camera.name, str(video), camera.fps, start_ms=0)
    total_s = _video_seconds(video)
    hits: list[RuleHit] = []
    last_t = 0.0
    for frame in frames:
        try:
            hits.extend(pipeline.process(frame).hits)
        except ZoneOutsideFrame as exc:
            raise exc.for_camera(camera.name) from None
        last_t = frame.t_s
        if progress is not None and total_s and pipeline.frames % 10 == 0:
            progress(min(1.0, last_t / total_s))
    hits.extend(pipeline.finish(last_t))
    duration = last_t + 1.0 / camera.fps if pipeline.frames else 0.0
    return Replay(hits, pipeline.frames, duration, pipeline.mean_detector_ms)


def _video_seconds(video: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(video))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        return count / fps if fps > 0 else 0.0
    finally:
        capture.release()
