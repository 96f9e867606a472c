"""Class-agnostic left-object finder: things that appeared in the scene and then stayed.

Two scene models run side by side on a small grey copy of each frame. The
long-term one is the empty scene; the short-term one follows the last few
seconds. A pixel that differs from the long-term scene but not from the
short-term one belongs to something that arrived and stopped moving: a bag,
a mattress, a pile of junk the detector may have no class for.

How the empty scene stays right on a busy street:

- It starts as the per-pixel median of the warm-up frames, each frame
  counting only where no person or vehicle covers it, so people present
  from the first frame do not become part of the road.
- A changed region whose outline is sharper in the scene model than in the
  frame is a *ghost*: something that was in the scene model has gone (a
  person who stood there at start-up). It is healed at once by taking the
  frame's pixels. A real object is the other way round: its outline is in
  the frame, not in the scene model.
- A change of overall brightness (clouds, the camera's auto-exposure) is
  followed by scaling the scene model, not mistaken for objects.
- Everywhere except under left objects and people the scene model keeps
  learning slowly, so errors heal.

An object is *left* once nobody stands next to it (person and vehicle boxes
widened by ``mover_margin``). From then on it is held: its box stays fixed,
and while passers-by hide it (their boxes cover it) it is neither reported
nor dropped, only checked again when it is visible; its clock, kept by the
tracker and the dwell rule, runs on. It is dropped when it is seen gone
twice, or hidden for longer than ``occlusion_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.config import StaticObjectConfig
from edge.nms import pairwise_intersections, pairwise_iou
from edge.thumbnail import Thumbnail

GHOST_EDGE_RATIO = 1.0        # outline in the scene model / outline in the frame above which a blob is a ghost
GONE_LOOKS = 2                # visible looks without the object before it counts as taken away
MIN_PRESENT_SHARE = 0.15      # least share of a held box still differing from the scene when present
BLUR_PX = 3                   # thumbnail pixels a person's box is widened by when it is left out of the scene
GAIN_STEP = 0.03              # overall brightness changes smaller than this are left to slow learning


@dataclass(frozen=True)
class StaticBlob:
    xyxy: tuple[float, float, float, float]   # pixels of the full frame
    score: float


@dataclass
class _Held:
    """An object that arrived and stayed, in thumbnail pixels."""

    box: np.ndarray                  # x1, y1, x2, y2 (thumbnail), fixed once left
    first_s: float
    share: float                     # share of the box differing from the scene when it was found
    left: bool = False               # nobody next to it since it was found
    last_visible_s: float = 0.0
    gone_looks: int = 0


def _overlap_fraction(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area covered by each of ``others``."""
    return pairwise_intersections(box[None], others)[0] / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


@dataclass
class StaticObjectFinder:
    config: StaticObjectConfig
    _long: np.ndarray | None = None
    _short: np.ndarray | None = None
    _warmup: list[np.ndarray] = field(default_factory=list)
    _warmup_masks: list[np.ndarray] = field(default_factory=list)
    _started_s: float | None = None
    _last_s: float = 0.0
    _scale: float = 1.0
    _held: list[_Held] = field(default_factory=list)

    @property
    def warming_up(self) -> bool:
        return self._long is None

    def update(self, small: Thumbnail, t_s: float, movers: np.ndarray,
               boosters: np.ndarray, booster_scores: np.ndarray) -> list[StaticBlob]:
        """Left objects visible in this frame.

        ``movers``: boxes of people and vehicles (live tracks included) whose
        area is not a left object. ``boosters``: boxes of labels that make a
        blob more likely to be dumped waste, with their scores.
        """
        grey = small.grey
        self._scale = small.scale
        movers_small = np.asarray(movers, dtype=np.float32).reshape(-1, 4) / self._scale
        if self._started_s is None:
            self._started_s = t_s
        if self._long is None:
            self._warm_up(grey, t_s, movers_small)
            return []
        dt = max(t_s - self._last_s, 1e-3)
        self._last_s = t_s
        self._follow_brightness(grey)
        threshold = self.config.diff_threshold
        differs_long = cv2.absdiff(grey, self._long) > threshold
        differs_short = cv2.absdiff(grey, self._short) > threshold
        static = (differs_long & ~differs_short).astype(np.uint8)
        static = cv2.morphologyEx(static, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        static = cv2.morphologyEx(static, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        self._add_new_objects(grey, static, differs_long, t_s)
        visible = self._judge_held(differs_long, movers_small, t_s)
        self._learn(grey, dt, movers_small)
        return [self._blob(held, boosters, booster_scores) for held in visible]

    def _warm_up(self, grey: np.ndarray, t_s: float, movers: np.ndarray) -> None:
        """Collect frames and where they are free of people; their median is the empty scene."""
        self._warmup.append(grey)
        # Boxes fit people loosely, and the thumbnail's blur spreads them a little further.
        margin = np.array([-BLUR_PX, -BLUR_PX, BLUR_PX, BLUR_PX], dtype=np.float32)
        self._warmup_masks.append(~_box_mask(grey.shape, movers + margin))
        self._last_s = t_s
        if t_s - self._started_s >= self.config.warmup_s and len(self._warmup) >= 3:
            self._long = _masked_median(np.stack(self._warmup), np.stack(self._warmup_masks))
            self._short = grey.copy()
            self._warmup.clear()
            self._warmup_masks.clear()

    def _follow_brightness(self, grey: np.ndarray) -> None:
        """Scale both scene models when the whole picture got brighter or darker."""
        scene = float(np.median(self._long))
        if scene < 1.0:
            return
        gain = float(np.median(grey)) / scene
        if abs(gain - 1.0) > GAIN_STEP:
            self._long *= gain

    def _add_new_objects(self, grey: np.ndarray, static: np.ndarray, differs_long: np.ndarray, t_s: float) -> None:
        """Blobs that belong to no held object: heal ghosts, hold the rest."""
        if not cv2.countNonZero(static):
            return
        # Labelling only the rectangle that holds every set pixel gives the same
        # blobs for a fraction of the cost: a static map is mostly empty.
        x0, y0, width, height = cv2.boundingRect(static)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(static[y0:y0 + height, x0:x0 + width],
                                                                   connectivity=8)
        share = stats[1:, cv2.CC_STAT_AREA] / (static.shape[0] * static.shape[1])
        keep = np.flatnonzero((share >= self.config.min_area) & (share <= self.config.max_area)) + 1
        held_boxes = np.array([h.box for h in self._held], dtype=np.float32).reshape(-1, 4)
        edges = None
        for label in keep.tolist():
            lx, ly, w, h = stats[label, :4].tolist()
            x, y = lx + x0, ly + y0
            box = np.array([x, y, x + w, y + h], dtype=np.float32)
            if len(held_boxes) and (pairwise_intersections(box[None], held_boxes)[0]
                                    / np.maximum(_areas(held_boxes).clip(max=w * h), 1e-9)).max() >= 0.5:
                continue
            mask = labels[ly:ly + h, lx:lx + w] == label
            if edges is None:
                edges = _gradient(grey), _gradient(self._long)
            if _is_ghost(mask, edges, x, y):
                self._heal(grey, mask, x, y)
                continue
            self._held.append(_Held(box, t_s, float(differs_long[y:y + h, x:x + w].mean()), last_visible_s=t_s))

    def _judge_held(self, differs_long: np.ndarray, movers: np.ndarray, t_s: float) -> list[_Held]:
        """Held objects seen in place this frame; drop those taken away or hidden too long."""
        widened = self._widened(movers)
        visible, kept = [], []
        for held in self._held:
            hidden = len(movers) and _overlap_fraction(held.box, movers).max() > self.config.mover_overlap
            if hidden:
                if t_s - held.last_visible_s <= self.config.occlusion_s:
                    kept.append(held)
                continue
            x1, y1, x2, y2 = np.round(held.box).astype(int)
            present = differs_long[y1:y2, x1:x2].mean() >= max(MIN_PRESENT_SHARE, 0.5 * held.share)
            held.gone_looks = 0 if present else held.gone_looks + 1
            if held.gone_looks >= GONE_LOOKS:
                continue
            kept.append(held)
            if not present:
                continue
            held.last_visible_s = t_s
            attended = len(widened) and _overlap_fraction(held.box, widened).max() > self.config.mover_overlap
            if not held.left and attended:
                continue
            held.left = True
            visible.append(held)
        self._held = kept
        return visible

    def _learn(self, grey: np.ndarray, dt: float, movers: np.ndarray) -> None:
        short_rate = 1 - math.exp(-dt / self.config.short_tau_s)
        long_rate = 1 - math.exp(-dt / self.config.long_tau_s)
        cv2.accumulateWeighted(grey, self._short, short_rate)
        # Under held objects the scene model is frozen, so an object stays visible
        # until it is removed; under people and vehicles it would learn them.
        frozen = _box_mask(grey.shape, np.concatenate([movers, *[h.box[None] for h in self._held]]))
        cv2.accumulateWeighted(grey, self._long, long_rate, mask=(~frozen).view(np.uint8))

    def _heal(self, grey: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
        h, w = mask.shape
        region = np.s_[y:y + h, x:x + w]
        grown = cv2.dilate(mask.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        self._long[region][grown] = grey[region][grown]

    def _widened(self, boxes: np.ndarray) -> np.ndarray:
        size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        return boxes + size * self.config.mover_margin * np.array([-1, -1, 1, 1], dtype=np.float32)

    def _blob(self, held: _Held, boosters: np.ndarray, booster_scores: np.ndarray) -> StaticBlob:
        box = held.box * self._scale
        score = self.config.base_score
        if len(boosters):
            ious = pairwise_iou(box[None], np.asarray(boosters, dtype=np.float32).reshape(-1, 4))[0]
            if ious.max() > 0.2:
                score = max(score, float(booster_scores[ious.argmax()]))
        return StaticBlob(tuple(float(v) for v in box), score)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_mask(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """Boolean map of the pixels inside any of the (thumbnail) boxes."""
    mask = np.zeros(shape, dtype=bool)
    height, width = shape
    for x1, y1, x2, y2 in np.round(boxes).astype(int).tolist():
        mask[max(0, y1):min(height, y2), max(0, x1):min(width, x2)] = True
    return mask


def _masked_median(frames: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per-pixel median of the usable samples; where none is usable, of all samples."""
    masked = np.where(usable, frames, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(masked, axis=0)
    fallback = np.median(frames, axis=0)
    return np.where(np.isnan(median), fallback, median).astype(np.float32)


def _gradient(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def _is_ghost(mask: np.ndarray, edges: tuple[np.ndarray, np.ndarray], x: int, y: int) -> bool:
    """Is the blob's outline sharper in the scene model than in the frame (something left the scene)?"""
    padded = np.pad(mask.view(np.uint8), 2)
    kernel = np.ones((3, 3), np.uint8)
    ring = (cv2.dilate(padded, kernel) - cv2.erode(padded, kernel)).astype(bool)
    frame_edges, scene_edges = edges
    height, width = frame_edges.shape
    ys, xs = np.nonzero(ring)
    ys, xs = ys + y - 2, xs + x - 2
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    ys, xs = ys[inside], xs[inside]
    if not len(ys):
        return False
    return float(scene_edges[ys, xs].mean()) > GHOST_EDGE_RATIO * float(frame_edges[ys, xs].mean())


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
