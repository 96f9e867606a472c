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
- A real object brings an outline of its own: along the edge of the changed
  region the frame is clearly sharper than the scene model, and its edges
  run differently from the scene's. Any other change is healed at once by
  taking the frame's pixels: a *ghost* (the outline is in the scene model: a
  person who stood there at start-up has gone), or a region that only
  changed its shade (a painted line after an exposure change: the same edges,
  only stronger).
- A change of overall brightness (clouds, the camera's auto-exposure) is
  followed by scaling the scene model, and a camera that sways on its pole
  by shifting it (phase correlation of the frame with the scene model): the
  edges of kerbs and painted lines are not mistaken for objects.
- Everywhere except under left objects and people the scene model keeps
  learning slowly, so errors heal.

An object is *left* once nobody lingers next to it (the boxes of people and
vehicles slower than ``linger_speed``, widened by ``mover_margin``): people
walking past on a busy pavement do not attend it. Its pieces (a parked car
seen as windows, roof and bonnet) are joined before its size is judged, so a
vehicle nobody detected is too large to be a left object; a blob that runs
out of the picture (it fills most of its own span along the edge) may be a
piece of something larger outside it and is not judged, while one that only
touches the edge with a tip is. More of a left object that becomes still
later (a cloth whose far end was still held) is taken into its box. From
then on it is held: its box stays fixed,
and while passers-by hide it (their boxes cover it) it is neither reported
nor dropped, only checked again when it is visible (nobody's box on it and
nothing moving over it: it counts as there while its box still differs from
the empty scene about as much as when it was found, or looks more like its
picture then than like the empty scene); its clock, kept by the dwell rule,
runs on. It is dropped when it is seen gone
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

OBJECT_EDGE_RATIO = 1.3       # outline in the frame / outline in the scene model from which a blob is an object
SAME_STRUCTURE = 0.6          # correlation of frame and scene gradients above which nothing new is there
TEMPLATE_MARGIN_PX = 2        # thumbnail pixels around a held object compared with its picture
OBJECT_ID_BASE = 1 << 40      # left objects' ids, apart from the tracker's
COVERED = 0.6                 # share of a held box under a person or vehicle box above which it is not seen
MOVING_SHARE = 0.2            # share of a held box changing right now above which it cannot be judged
STILL_CHANGED = 0.5           # share of the changed pixels it was found with that keeps an object there
GONE_LOOKS = 2                # visible looks without the object before it counts as taken away
JOIN_PX = 7                   # thumbnail pixels: pieces of one thing closer than this are judged as one
MAX_WARMUP_SAMPLES = 40       # frames kept for the start-up median, however fast the camera (memory)
BLUR_PX = 3                   # thumbnail pixels a person's box is widened by when it is left out of the scene
MIN_SHIFT_PX = 0.3            # thumbnail pixels of camera movement worth following
MAX_SHIFT_PX = 2.0            # more than this between looks is not a sway; left to the slow learning
MIN_MATCHING = 0.5            # share of pixels that must nearly match to measure a shift
SHIFT_PASSES = 3
MIN_TEXTURE = 0.05            # mean squared gradient (per axis) below which a shift cannot be measured
EDGE_CUT = 0.5                # share of a blob's span along the picture's edge on it from which it runs out of view
GAIN_STEP = 0.03              # overall brightness changes smaller than this are left to slow learning


@dataclass(frozen=True)
class StaticBlob:
    xyxy: tuple[float, float, float, float]   # pixels of the full frame
    score: float
    object_id: int = 0                         # the same for one object as long as it is held


@dataclass
class _Held:
    """An object that arrived and stayed, in thumbnail pixels."""

    id: int
    box: np.ndarray                  # x1, y1, x2, y2 (thumbnail), fixed once left
    first_s: float
    template: np.ndarray             # how the object looked when found (grey, box plus a margin)
    level: float                     # the scene's overall brightness then
    changed: float = 1.0             # share of its box that differed from the empty scene then
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
    _next_id: int = OBJECT_ID_BASE
    _scene_level: float = 0.0       # the scene model's overall brightness at this look
    _differs: np.ndarray | None = None   # this look's map of pixels that differ from the empty scene

    @property
    def warming_up(self) -> bool:
        return self._long is None

    def reconfigure(self, config: StaticObjectConfig) -> None:
        """New thresholds; the scene models and the held objects are kept."""
        self.config = config

    def held_ids(self) -> set[int]:
        """Ids of the objects held now, hidden ones included."""
        return {held.id for held in self._held}

    def update(self, small: Thumbnail, t_s: float, movers: np.ndarray,
               boosters: np.ndarray, booster_scores: np.ndarray, lingering: np.ndarray | None = None) -> list[StaticBlob]:
        """Left objects visible in this frame.

        ``movers``: boxes of people and vehicles (live tracks included) whose
        area is not a left object; ``lingering``: those of them that hardly
        move (default: all). ``boosters``: boxes of labels that make a blob more
        likely to be dumped waste, with their scores.
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
        self._scene_level = self._follow_brightness(grey)
        if self._follow_camera(grey):
            self._scene_level = _level(self._long)
        threshold = self.config.diff_threshold
        self._differs = differs_long = cv2.absdiff(grey, self._long) > threshold
        differs_short = cv2.absdiff(grey, self._short) > threshold
        static = (differs_long & ~differs_short).astype(np.uint8)
        static = cv2.morphologyEx(static, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        static = cv2.morphologyEx(static, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        lingering_small = movers_small if lingering is None else \
            np.asarray(lingering, dtype=np.float32).reshape(-1, 4) / self._scale
        self._add_new_objects(grey, static, movers_small, lingering_small, t_s)
        visible = self._judge_held(grey, differs_short, movers_small, lingering_small, t_s)
        self._learn(grey, dt, movers_small)
        return [self._blob(held, boosters, booster_scores) for held in visible]

    def _warm_up(self, grey: np.ndarray, t_s: float, movers: np.ndarray) -> None:
        """Collect frames and where they are free of people; their median is the empty scene."""
        if not self._warmup or t_s - self._last_s >= self.config.warmup_s / MAX_WARMUP_SAMPLES:
            self._warmup.append(np.rint(grey).astype(np.uint8))     # the thumbnail's levels are whole numbers
            # Boxes fit people loosely, and the thumbnail's blur spreads them a little further.
            margin = np.array([-BLUR_PX, -BLUR_PX, BLUR_PX, BLUR_PX], dtype=np.float32)
            self._warmup_masks.append(~_box_mask(grey.shape, movers + margin))
            self._last_s = t_s
        if t_s - self._started_s >= self.config.warmup_s and len(self._warmup) >= 3:
            self._long = _empty_scene(np.stack(self._warmup), np.stack(self._warmup_masks), self.config.diff_threshold)
            self._short = grey.copy()
            self._warmup.clear()
            self._warmup_masks.clear()

    def _follow_brightness(self, grey: np.ndarray) -> float:
        """Scale the scene model when the whole picture got brighter or darker; return its level after."""
        scene = _level(self._long)
        if scene < 1.0:
            return scene
        gain = _level(grey) / scene
        if abs(gain - 1.0) > GAIN_STEP:
            self._long *= gain
            return _level(self._long)
        return scene

    def _follow_camera(self, grey: np.ndarray) -> bool:
        """Shift both scene models by the camera's own small movement since the last look.

        A least-squares fit of one translation to the image gradients (Lucas-Kanade),
        counting only pixels that already nearly match, so people and objects do not
        pull it; a few passes, since each is exact only for small shifts.
        """
        total = np.zeros(2, dtype=np.float64)
        scene = self._long
        for _ in range(SHIFT_PASSES):
            step = _translation(scene, grey, self.config.diff_threshold)
            if step is None or math.hypot(*step) < MIN_SHIFT_PX / 2:
                break
            total += step
            if math.hypot(*total) > MAX_SHIFT_PX:
                return False
            scene = _shifted(self._long, total)
        if math.hypot(*total) < MIN_SHIFT_PX or _mismatch(scene, grey) >= _mismatch(self._long, grey):
            return False
        self._long = scene
        self._short = _shifted(self._short, total)
        for held in self._held:
            held.box = held.box + np.float32([total[0], total[1], total[0], total[1]])
        return True

    def _add_new_objects(self, grey: np.ndarray, static: np.ndarray, movers: np.ndarray, lingering: np.ndarray,
                         t_s: float) -> None:
        """Blobs that belong to no held object: heal ghosts, hold the rest."""
        if not cv2.countNonZero(static):
            return
        # Labelling only the rectangle that holds every set pixel gives the same
        # blobs for a fraction of the cost: a static map is mostly empty.
        x0, y0, width, height = cv2.boundingRect(static)
        window = static[y0:y0 + height, x0:x0 + width]
        joined = cv2.dilate(window, np.ones((JOIN_PX, JOIN_PX), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        labels[window == 0] = 0          # pieces joined, but only their own pixels count
        area = np.bincount(labels.ravel(), minlength=count)[1:]
        share = area / (static.shape[0] * static.shape[1])
        keep = np.flatnonzero((share >= self.config.min_area) & (share <= self.config.max_area)) + 1
        too_large = np.flatnonzero(share > self.config.max_area) + 1
        if len(too_large):
            self._drop_parts_of(np.isin(labels, too_large), x0, y0)
        held_boxes = np.array([h.box for h in self._held], dtype=np.float32).reshape(-1, 4)
        edges = None
        for label in keep.tolist():
            lx, ly, w, h = cv2.boundingRect((labels == label).view(np.uint8))
            x, y = lx + x0, ly + y0
            mask = labels[ly:ly + h, lx:lx + w] == label
            if _cut_by_edge(mask, x, y, static.shape):
                continue      # a piece of something larger outside the picture
            box = np.array([x, y, x + w, y + h], dtype=np.float32)
            if len(held_boxes):
                shared = pairwise_intersections(box[None], held_boxes)[0] / np.maximum(_areas(held_boxes).clip(max=w * h), 1e-9)
                if shared.max() >= 0.5:
                    self._grow(self._held[int(shared.argmax())], box, grey, movers)   # more of it became still
                    continue
            if self._grow_held(box, grey, movers, lingering):
                continue
            if edges is None:
                edges = _gradient(grey), _gradient(self._long)
            if not _adds_outline(mask, edges, x, y):
                self._heal(grey, mask, x, y)
                continue
            self._next_id += 1
            self._held.append(_Held(self._next_id, box, t_s, _patch(grey, box).copy(), self._scene_level,
                                    self._changed_share(box), last_visible_s=t_s))

    def _grow_held(self, box: np.ndarray, grey: np.ndarray, movers: np.ndarray, lingering: np.ndarray) -> bool:
        """A piece appearing right beside a left object, with nobody standing on it, is more of that object."""
        if len(lingering) and _overlap_fraction(box, lingering).max() > self.config.mover_overlap:
            return False
        near = box + np.float32([-JOIN_PX, -JOIN_PX, JOIN_PX, JOIN_PX])
        for held in self._held:
            if held.left and pairwise_intersections(near[None], held.box[None])[0, 0] > 0:
                self._grow(held, box, grey, movers)
                return True
        return False

    def _grow(self, held: _Held, box: np.ndarray, grey: np.ndarray, movers: np.ndarray) -> None:
        """Take ``box`` into a left object's, unless someone is on it or the object would grow too large.

        Not into one still attended: that may be the one standing there, not a thing.
        """
        grown = np.concatenate([np.minimum(held.box[:2], box[:2]), np.maximum(held.box[2:], box[2:])])
        if not held.left or np.array_equal(grown, held.box):
            return
        if len(movers) and _overlap_fraction(box, movers).max() > self.config.mover_overlap:
            return
        if _areas(grown[None])[0] > self.config.max_area * grey.size:
            return
        held.box = grown
        held.template, held.level = _patch(grey, held.box).copy(), self._scene_level
        held.changed = self._changed_share(grown)

    def _changed_share(self, box: np.ndarray) -> float:
        x1, y1, x2, y2 = np.round(box).astype(int).tolist()
        inside = self._differs[max(0, y1):y2, max(0, x1):x2]
        return float(inside.mean()) if inside.size else 0.0

    def _drop_parts_of(self, large: np.ndarray, x0: int, y0: int) -> None:
        """Forget held objects that turned out to be pieces of something too large (a car that parked)."""
        kept = []
        for held in self._held:
            x1, y1, x2, y2 = (np.round(held.box).astype(int) - [x0, y0, x0, y0]).clip(min=0).tolist()
            region = large[y1:y2, x1:x2]
            if region.size and region.mean() >= 0.5:
                continue
            kept.append(held)
        self._held = kept

    def _still_there(self, held: _Held, grey: np.ndarray) -> bool:
        """Does the place still differ from the empty scene about as much as when the object was found,
        or look more like the object as it was found than like the empty scene?

        The first holds even when the object's picture caught a passer-by's leg. The
        second is judged on the box with a margin, so the object's outline counts, and
        with the object's picture scaled to today's brightness, so an exposure change
        is no removal.
        """
        if self._changed_share(held.box) >= STILL_CHANGED * held.changed:
            return True
        now = _patch(grey, held.box)
        if now.shape != held.template.shape:
            return True
        looks_like_object = float(np.abs(now - held.template * (self._scene_level / max(held.level, 1.0))).mean())
        looks_like_scene = float(np.abs(now - _patch(self._long, held.box)).mean())
        return looks_like_object < looks_like_scene

    def _judge_held(self, grey: np.ndarray, differs_short: np.ndarray, movers: np.ndarray, lingering: np.ndarray,
                    t_s: float) -> list[_Held]:
        """Held objects seen in place this frame; drop those taken away or hidden too long."""
        widened = self._widened(lingering)
        visible, kept = [], []
        for held in self._held:
            covered = _overlap_fraction(held.box, movers).max() if len(movers) else 0.0
            if covered > COVERED or not self._still_there(held, grey):
                hidden = covered > self.config.mover_overlap or _patch(differs_short, held.box).mean() > MOVING_SHARE
                if hidden:        # not seen, but someone stands or walks in front of it: ask again later
                    if t_s - held.last_visible_s <= self.config.occlusion_s:
                        kept.append(held)
                    continue
                held.gone_looks += 1
                if held.gone_looks < GONE_LOOKS:
                    kept.append(held)
                continue
            held.gone_looks = 0
            kept.append(held)
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
        return StaticBlob(tuple(float(v) for v in box), score, held.id)


def _cut_by_edge(mask: np.ndarray, x: int, y: int, shape: tuple[int, int]) -> bool:
    """Does the blob run out of the picture: along an edge it touches, does it fill most of its own span?

    A thing lying near the edge touches it with a tip or a corner (the smoothing of
    the map reaches the edge); a car that parks half out of view is cut off there
    along its whole height.
    """
    height, width = shape
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    runs = []
    if x <= 0:
        runs.append((mask[:, 0].sum(), rows.sum()))
    if x + mask.shape[1] >= width:
        runs.append((mask[:, -1].sum(), rows.sum()))
    if y <= 0:
        runs.append((mask[0].sum(), cols.sum()))
    if y + mask.shape[0] >= height:
        runs.append((mask[-1].sum(), cols.sum()))
    return any(touching >= EDGE_CUT * max(span, 1) for touching, span in runs)


def _patch(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box with a margin of TEMPLATE_MARGIN_PX, clipped to the image."""
    height, width = image.shape
    x1, y1, x2, y2 = np.round(box).astype(int).tolist()
    m = TEMPLATE_MARGIN_PX
    return image[max(0, y1 - m):min(height, y2 + m), max(0, x1 - m):min(width, x2 + m)]


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_mask(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """Boolean map of the pixels inside any of the (thumbnail) boxes."""
    mask = np.zeros(shape, dtype=bool)
    height, width = shape
    for x1, y1, x2, y2 in np.round(boxes).astype(int).tolist():
        mask[max(0, y1):min(height, y2), max(0, x1):min(width, x2)] = True
    return mask


def _level(image: np.ndarray) -> float:
    """Overall brightness: the median of every 16th pixel, as good as all of them here and far cheaper."""
    return float(np.median(image[::4, ::4]))


def _translation(scene: np.ndarray, grey: np.ndarray, threshold: float) -> np.ndarray | None:
    """The (dx, dy) that moves ``scene`` onto ``grey``, from pixels that nearly match; None when unknowable."""
    change = grey - scene
    use = (np.abs(change) < threshold).astype(np.float32)
    matching = float(use.sum())
    if matching < MIN_MATCHING * use.size:
        return None
    gx = cv2.Sobel(scene, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(scene, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    # Masked sums of products as dot products of the masked, flattened images:
    # one pass each, masked in place, no temporary image per product.
    gx, gy, change = (np.multiply(image, use, out=image).ravel() for image in (gx, gy, change))
    gxy = float(gx @ gy)
    a = np.array([[float(gx @ gx), gxy], [gxy, float(gy @ gy)]])
    if np.linalg.det(a) < MIN_TEXTURE * matching ** 2:
        return None
    return -np.linalg.solve(a, [float(gx @ change), float(gy @ change)])


def _mismatch(scene: np.ndarray, grey: np.ndarray) -> float:
    return float(cv2.norm(scene, grey, cv2.NORM_L1))


def _shifted(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    matrix = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _empty_scene(frames: np.ndarray, usable: np.ndarray, threshold: float) -> np.ndarray:
    """The median of the warm-up frames, but its earliest view where the scene changed during warm-up.

    Something put down in the first seconds fills most of the warm-up frames, so
    the median takes it for the empty scene and it is never found. Where the
    first and the last quarter of the warm-up disagree, the first is kept: if
    something arrived, it is then found as usual; if something left (a person
    who stood there at start-up), the scene model holds a ghost, which heals at
    once since its outline is in the model and not in the frame.
    """
    whole = _masked_median(frames, usable)
    quarter = max(1, len(frames) // 4)
    first, last = usable[:quarter].any(axis=0), usable[-quarter:].any(axis=0)
    if len(frames) < 4 or not (first & last).any():
        return whole
    early = _masked_median(frames[:quarter], usable[:quarter])
    late = _masked_median(frames[-quarter:], usable[-quarter:])
    changed = first & last & (np.abs(early - late) > threshold)
    return np.where(changed, early, whole).astype(np.float32)


def _masked_median(frames: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per-pixel median of the usable samples (uint8 frames); where none is usable, of all samples.

    Unusable samples are set to 255: values no smaller than every usable one
    leave the usable ones' order statistics where they were. Sorting whole
    frames against each other with element-wise min and max is several times
    faster than sorting each pixel's few samples on their own.
    """
    count, height, width = frames.shape
    free = usable.reshape(count, -1)
    samples = (~free).view(np.uint8) * np.uint8(255)
    samples |= frames.reshape(count, -1)
    ordered = _sorted_planes(list(samples))
    counts = np.add.reduce(free.view(np.uint8), axis=0, dtype=np.intp)
    low = _pick(ordered, np.maximum((counts - 1) // 2, 0))
    high = _pick(ordered, np.minimum(counts // 2, count - 1))
    median = ((low.astype(np.float32) + high) / 2).reshape(height, width)
    never_free = (counts == 0).reshape(height, width)
    if never_free.any():
        median[never_free] = np.median(frames[:, never_free], axis=0)
    return median


def _sorted_planes(planes: list[np.ndarray]) -> np.ndarray:
    """Odd-even transposition sort of equal-shaped arrays, element by element; modifies the arrays."""
    spare = np.empty_like(planes[0])
    for round_no in range(len(planes)):
        for i in range(round_no % 2, len(planes) - 1, 2):
            np.minimum(planes[i], planes[i + 1], out=spare)
            np.maximum(planes[i], planes[i + 1], out=planes[i + 1])
            planes[i], spare = spare, planes[i]
    return np.stack(planes)


def _pick(ordered: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per column, the element of ``ordered`` (samples x pixels) at that column's rank."""
    pixels = ordered.shape[1]
    return ordered.ravel()[rank * pixels + np.arange(pixels)]


def _gradient(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return gx, gy, cv2.magnitude(gx, gy)


def _adds_outline(mask: np.ndarray, edges: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
                  x: int, y: int) -> bool:
    """Is the blob's outline clearly sharper in the frame than in the scene model (something arrived)?"""
    padded = np.pad(mask.view(np.uint8), 2)
    kernel = np.ones((3, 3), np.uint8)
    ring = (cv2.dilate(padded, kernel) - cv2.erode(padded, kernel)).astype(bool)
    (frame_gx, frame_gy, frame_edges), (scene_gx, scene_gy, scene_edges) = edges
    height, width = frame_edges.shape
    ys, xs = np.nonzero(ring)
    ys, xs = ys + y - 2, xs + x - 2
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    ys, xs = ys[inside], xs[inside]
    if not len(ys):
        return True
    if float(frame_edges[ys, xs].mean()) <= OBJECT_EDGE_RATIO * float(scene_edges[ys, xs].mean()):
        return False
    y1, y2, x1, x2 = max(0, y - 2), min(height, y + mask.shape[0] + 2), max(0, x - 2), min(width, x + mask.shape[1] + 2)
    dot = float((frame_gx[y1:y2, x1:x2] * scene_gx[y1:y2, x1:x2] + frame_gy[y1:y2, x1:x2] * scene_gy[y1:y2, x1:x2]).sum())
    norm = float(np.sqrt((frame_edges[y1:y2, x1:x2] ** 2).sum() * (scene_edges[y1:y2, x1:x2] ** 2).sum()))
    return norm == 0.0 or dot / norm < SAME_STRUCTURE


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
