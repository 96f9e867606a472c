"""One camera's vision pipeline: frame -> detections -> tracks -> rule hits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.camera import Frame
from edge.config import STATIC_OBJECT_LABEL, CameraConfig, RulesConfig, StaticObjectConfig
from edge.detections import Detections
from edge.detectors import Detector
from edge.evidence import Evidence, annotate, encode_jpeg
from edge.rules import DwellRules, RuleHit
from edge.staticobjects import StaticBlob, StaticObjectFinder
from edge.tracker import IouTracker
from edge.zones import zone_for_frame


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    tracked: Detections
    hits: list[RuleHit]
    detector_ms: float


def with_static_blobs(detections: Detections, blobs: list[StaticBlob]) -> Detections:
    """Detector boxes plus left-object blobs, the blobs under their own label."""
    labels = (*detections.labels, STATIC_OBJECT_LABEL)
    if not blobs:
        return Detections(detections.xyxy, detections.scores, detections.class_ids, labels=labels)
    return Detections(
        xyxy=np.concatenate([detections.xyxy, np.asarray([b.xyxy for b in blobs], dtype=np.float32)]),
        scores=np.concatenate([detections.scores, np.asarray([b.score for b in blobs], dtype=np.float32)]),
        class_ids=np.concatenate([detections.class_ids,
                                  np.full(len(blobs), len(detections.labels), dtype=np.int32)]),
        labels=labels,
    )


@dataclass
class CameraPipeline:
    camera: CameraConfig
    rules_config: RulesConfig
    detector: Detector
    static_config: StaticObjectConfig = field(default_factory=StaticObjectConfig)
    tracker: IouTracker = field(default_factory=IouTracker)
    rules: DwellRules | None = None
    static_finder: StaticObjectFinder | None = None
    frames: int = 0
    detector_ms_total: float = 0.0

    def __post_init__(self) -> None:
        watches_dumping = any(z.type == "dumping_hotspot" for z in self.camera.zones)
        if watches_dumping and self.static_config.enabled:
            self.static_finder = StaticObjectFinder(self.static_config)
        labels = self.detector.labels
        self._mover_ids = {i for i, name in enumerate(labels) if name in self.static_config.mover_labels}
        self._booster_ids = [i for i, name in enumerate(labels) if name in self.static_config.boost_labels]

    def process(self, frame: Frame) -> FrameResult:
        if self.rules is None:  # zones are in pixels of the first frame's size
            zones = [zone_for_frame(z, frame.width, frame.height) for z in self.camera.zones]
            self.rules = DwellRules(self.rules_config, zones, frame.width)
        started = time.perf_counter()
        detections = self.detector.detect(frame.image)
        detector_ms = (time.perf_counter() - started) * 1000
        self.frames += 1
        self.detector_ms_total += detector_ms
        if self.static_finder is not None:
            detections = with_static_blobs(detections, self._static_blobs(frame, detections))
        tracked = self.tracker.update(detections, frame.t_s)
        hits = self.rules.update(tracked, frame.t_s, self.tracker.live_track_ids())
        return FrameResult(frame, tracked, hits, detector_ms)

    def _static_blobs(self, frame: Frame, detections: Detections) -> list[StaticBlob]:
        is_mover = np.isin(detections.class_ids, list(self._mover_ids))
        movers = np.concatenate([detections.xyxy[is_mover], self.tracker.live_boxes(self._mover_ids)])
        boosters = np.isin(detections.class_ids, self._booster_ids)
        return self.static_finder.update(frame.image, frame.t_s, movers, detections.xyxy[boosters],
                                         detections.scores[boosters])

    def finish(self, t_s: float) -> list[RuleHit]:
        return [] if self.rules is None else self.rules.finish(t_s)

    @property
    def mean_detector_ms(self) -> float:
        return self.detector_ms_total / self.frames if self.frames else 0.0


def evidence_for(hit: RuleHit, frame: Frame, quality: int) -> Evidence:
    text = f"{hit.category.value}: {hit.label} {hit.score:.2f} {hit.dwell_s:.0f}s"
    image = annotate(frame.image, [(hit.bbox_px, text)], hit.zone.polygon)
    return encode_jpeg(image, quality)


def normalised_bbox(bbox_px: tuple[float, float, float, float], width: int, height: int) -> tuple[float, ...]:
    scale = np.array([width, height, width, height], dtype=np.float64)
    return tuple(float(v) for v in np.clip(np.asarray(bbox_px) / scale, 0.0, 1.0))
