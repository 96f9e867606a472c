"""One camera's vision pipeline: frame -> detections -> tracks -> rule hits.

    motion gate -> detector (or the last detections, when nothing moved)
      -> label filters -> tracker (+ left objects, with the finder's ids) -> zone rules -> hits

The detector runs when something moves, and every ``motion.recheck_s``
regardless, so objects that stay still (a stall, a dumped mattress) are
confirmed without paying for a detector call on every frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.camera import Frame
from edge.config import STATIC_OBJECT_LABEL, CameraConfig, RulesConfig, StaticObjectConfig, TrackerConfig
from edge.detections import Detections
from edge.detectors import Detector
from edge.evidence import Evidence, annotate, encode_jpeg
from edge.filters import LabelFilters
from edge.liveness import LivenessMeter
from edge.motion import MotionDetector
from edge.rules import DwellRules, RuleHit
from edge.settings import CameraSettings
from edge.staticobjects import StaticBlob, StaticObjectFinder
from edge.thumbnail import Thumbnail, thumbnail
from edge.tracker import IouTracker
from edge.zones import Zone, zone_for_frame


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    tracked: Detections
    hits: list[RuleHit]
    detector_ms: float          # 0 when the motion gate skipped the detector
    detector_ran: bool


def with_left_objects(tracked: Detections, blobs: list[StaticBlob]) -> Detections:
    """Tracked detector boxes plus the left objects, under their own label and the finder's own ids."""
    labels = (*tracked.labels, STATIC_OBJECT_LABEL)
    track_ids = tracked.track_ids if tracked.track_ids is not None else np.zeros(0, dtype=np.int64)
    stationary = tracked.stationary if tracked.stationary is not None else np.zeros(len(tracked), dtype=bool)
    if not blobs:
        return Detections(tracked.xyxy, tracked.scores, tracked.class_ids, track_ids, labels, stationary)
    return Detections(
        xyxy=np.concatenate([tracked.xyxy, np.asarray([b.xyxy for b in blobs], dtype=np.float32)]),
        scores=np.concatenate([tracked.scores, np.asarray([b.score for b in blobs], dtype=np.float32)]),
        class_ids=np.concatenate([tracked.class_ids, np.full(len(blobs), len(tracked.labels), dtype=np.int32)]),
        track_ids=np.concatenate([track_ids, np.asarray([b.object_id for b in blobs], dtype=np.int64)]),
        labels=labels,
        stationary=np.concatenate([stationary, np.ones(len(blobs), dtype=bool)]),
    )


@dataclass
class CameraPipeline:
    camera: CameraConfig
    rules_config: RulesConfig
    detector: Detector
    static_config: StaticObjectConfig = field(default_factory=StaticObjectConfig)
    tracker_config: TrackerConfig = field(default_factory=TrackerConfig)
    frames: int = 0
    detector_calls: int = 0
    detector_ms_total: float = 0.0

    def __post_init__(self) -> None:
        labels = self.detector.labels
        self.tracker = IouTracker.from_config(self.tracker_config)
        self.motion = MotionDetector(self.camera.motion)
        self.static_finder: StaticObjectFinder | None = None
        if any(z.type == "dumping_hotspot" for z in self.camera.zones) and self.static_config.enabled:
            self.static_finder = StaticObjectFinder(self.static_config)
        self._mover_ids = {i for i, name in enumerate(labels) if name in self.static_config.mover_labels}
        self.liveness = LivenessMeter(tuple(self.rules_config.street_vending.labels))
        self.rules: DwellRules | None = None
        self.filters: LabelFilters | None = None
        self._last_detections = Detections.empty(labels)
        self._last_detector_t: float | None = None
        self._last_blobs: list[StaticBlob] = []
        self._last_static_t: float | None = None
        self.settings = CameraSettings(self.camera, self.rules_config, self.static_config, self.tracker_config)
        self._watches_vending = watches_vending(self.camera, self.rules_config)

    @classmethod
    def from_settings(cls, settings: CameraSettings, detector: Detector) -> CameraPipeline:
        pipeline = cls(settings.camera, settings.rules, detector, settings.static_objects, settings.tracker)
        pipeline.settings = settings
        return pipeline

    def reconfigure(self, settings: CameraSettings) -> None:
        """Take a new snapshot of settings, between two frames: each stage gets its part.

        Tracks, ongoing stays, held objects and the scene models are kept; a camera's
        zones are checked against its frame size (``ZoneOutsideFrame``).
        """
        camera = settings.camera
        if self.rules is not None and self.filters is not None:
            zones = self._zones_of(camera, self.filters.width, self.filters.height)
            self.filters = LabelFilters(camera.filters, zones, self.filters.width, self.filters.height)
            self.rules.reconfigure(settings.rules, zones, self.filters.threshold_for)
        self.camera, self.rules_config = camera, settings.rules
        self.static_config, self.tracker_config = settings.static_objects, settings.tracker
        self.liveness.reconfigure(tuple(settings.rules.street_vending.labels))
        self.motion.reconfigure(camera.motion)
        self.tracker.reconfigure(settings.tracker)
        if self.static_finder is not None:
            self.static_finder.reconfigure(settings.static_objects)
        self._mover_ids = {i for i, name in enumerate(self.detector.labels) if name in settings.static_objects.mover_labels}
        self._watches_vending = watches_vending(camera, settings.rules)
        self.settings = settings

    def process(self, frame: Frame) -> FrameResult:
        if self.rules is None:  # zones are in pixels of the first frame's size
            self._set_up_for(frame.width, frame.height)
        small = thumbnail(frame.image)
        detections, detector_ms, ran = self._detect_if_needed(frame, small)
        detections = self.filters.apply(detections)
        blobs = [] if self.static_finder is None else self._static_blobs(small, frame.t_s, detections)
        tracked = self.tracker.update(detections, frame.t_s)
        live = self.tracker.live_track_ids()
        if self.static_finder is not None:    # left objects keep the finder's ids, through every occlusion
            tracked = with_left_objects(tracked, blobs)
            live |= self.static_finder.held_ids()
        moves = self.liveness.update(tracked, frame.image, frame.t_s) if self._watches_vending else None
        hits = self.rules.update(tracked, frame.t_s, live, attach=frame, moves=moves)
        self.frames += 1
        return FrameResult(frame, tracked, hits, detector_ms, ran)

    def finish(self, t_s: float) -> list[RuleHit]:
        return [] if self.rules is None else self.rules.finish(t_s)


    @property
    def mean_detector_ms(self) -> float:
        return self.detector_ms_total / self.detector_calls if self.detector_calls else 0.0

    def _set_up_for(self, width: int, height: int) -> None:
        zones = self._zones(width, height)
        self.filters = LabelFilters(self.camera.filters, zones, width, height)
        self.rules = DwellRules(self.rules_config, zones, width, thresholds=self.filters.threshold_for)

    def _zones(self, width: int, height: int) -> list[Zone]:
        return self._zones_of(self.camera, width, height)

    @staticmethod
    def _zones_of(camera: CameraConfig, width: int, height: int) -> list[Zone]:
        return [zone_for_frame(z, width, height) for z in camera.zones]

    def _detect_if_needed(self, frame: Frame, small: Thumbnail) -> tuple[Detections, float, bool]:
        moving = self.motion.is_moving(self.motion.update(small))
        due = self._last_detector_t is None or frame.t_s - self._last_detector_t >= self.camera.motion.recheck_s
        if self.camera.motion.enabled and not moving and not due:
            return self._last_detections, 0.0, False
        started = time.perf_counter()
        detections = self.detector.detect(frame.image)
        detector_ms = (time.perf_counter() - started) * 1000
        self.detector_calls += 1
        self.detector_ms_total += detector_ms
        self._last_detections = detections
        self._last_detector_t = frame.t_s
        return detections, detector_ms, True

    def _static_blobs(self, small: Thumbnail, t_s: float, detections: Detections) -> list[StaticBlob]:
        if (not self.static_finder.warming_up and self._last_static_t is not None
                and t_s - self._last_static_t < self.static_config.interval_s):
            return self._last_blobs
        self._last_static_t = t_s
        self._last_blobs = self._find_static_blobs(small, t_s, detections)
        return self._last_blobs

    def _find_static_blobs(self, small: Thumbnail, t_s: float, detections: Detections) -> list[StaticBlob]:
        is_mover = detections.labelled(tuple(self.static_config.mover_labels))
        movers = np.concatenate([detections.xyxy[is_mover], self.tracker.live_boxes(self._mover_ids)])
        lingering = self.tracker.live_boxes(self._mover_ids, max_speed=self.static_config.linger_speed)
        boosters = detections.labelled(tuple(self.static_config.boost_labels))
        return self.static_finder.update(small, t_s, movers, detections.xyxy[boosters],
                                         detections.scores[boosters], lingering)


def watches_vending(camera: CameraConfig, rules: RulesConfig) -> bool:
    """Does this camera need the liveness meter (a no-vending zone, and moves required of vendors)?"""
    return rules.street_vending.min_moves > 0 and any(z.type == "no_vending" for z in camera.zones)


def evidence_for(hit: RuleHit, fallback: Frame, quality: int) -> Evidence:
    """The best-scoring frame of the incident, box and zone drawn, with an enlarged crop inset."""
    frame = hit.best if isinstance(hit.best, Frame) else fallback
    bbox = hit.best_bbox_px if isinstance(hit.best, Frame) else hit.bbox_px
    text = f"{hit.category.value}: {hit.label} {hit.score:.2f} {hit.dwell_s:.0f}s"
    image = annotate(frame.image, [(bbox, text)], hit.zone.polygon)
    return encode_jpeg(with_crop_inset(image, frame.image, bbox), quality)


def with_crop_inset(canvas: np.ndarray, source: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """Paste an enlarged crop of the object into the top-right corner of the picture."""
    height, width = source.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in bbox)
    pad_x, pad_y = max(4, (x2 - x1) // 4), max(4, (y2 - y1) // 4)
    x1, y1, x2, y2 = max(0, x1 - pad_x), max(0, y1 - pad_y), min(width, x2 + pad_x), min(height, y2 + pad_y)
    if x2 <= x1 or y2 <= y1:
        return canvas
    crop = source[y1:y2, x1:x2]
    scale = min(width / 3 / crop.shape[1], height / 2 / crop.shape[0])
    inset = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                       interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    out = canvas.copy()
    h, w = inset.shape[:2]
    out[2:2 + h, width - w - 2:width - 2] = inset
    cv2.rectangle(out, (width - w - 3, 1), (width - 2, 2 + h), (255, 255, 255), 1)
    return out


def normalised_bbox(bbox_px: tuple[float, float, float, float], width: int, height: int) -> tuple[float, ...]:
    scale = np.array([width, height, width, height], dtype=np.float64)
    return tuple(float(v) for v in np.clip(np.asarray(bbox_px) / scale, 0.0, 1.0))
