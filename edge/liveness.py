"""Signs of life: does anything move inside a tracked person's box?

A traffic cone, a sign or a mannequin can score as a "person" frame after
frame, and it stands as still as a vendor. What gives it away is that its
pixels never change: a real person shifts their weight, turns their head,
moves their hands. Once a second, each watched track's box is compared with
the same region a second earlier; a change in enough of its pixels counts as
one move. Samples where another tracked person or vehicle overlaps the
region are skipped, so passers-by do not lend a fixed object their motion. A track
whose box wanders off the region it was compared in starts a new region.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.config import STATIC_OBJECT_LABEL
from edge.detections import Detections
from edge.nms import pairwise_intersections

SAMPLE_S = 1.0             # seconds between the two looks compared
PATCH = (24, 48)           # width, height the region is resized to
CHANGE_LEVEL = 25          # grey levels: more than compression noise
MOVED_SHARE = 0.04         # share of the region's pixels that must change for a move
OTHERS_OVERLAP = 0.2       # skip a sample when another object covers this share of the region
REGION_DRIFT = 0.5         # new region when the box's centre moved this share of its size


@dataclass
class _Watch:
    region: np.ndarray                  # x1, y1, x2, y2 in frame pixels
    patch: np.ndarray | None            # grey, PATCH sized; taken a second after the region is set
    sampled_s: float
    moves: int = 0


@dataclass
class LivenessMeter:
    """Counts the moves of the tracks with the watched labels; ``update`` returns moves per track id."""

    labels: tuple[str, ...]
    _watches: dict[int, _Watch] = field(default_factory=dict)

    def reconfigure(self, labels: tuple[str, ...]) -> None:
        """Watch other labels; what was counted for tracks still watched goes on."""
        self.labels = labels

    def update(self, tracked: Detections, image: np.ndarray, t_s: float) -> dict[int, int]:
        if tracked.track_ids is None or not len(tracked):
            self._watches.clear()
            return {}
        watched = np.flatnonzero(tracked.labelled(self.labels))
        alive = {}
        for i in watched.tolist():
            track_id = int(tracked.track_ids[i])
            watch = self._watches.get(track_id)
            box = tracked.xyxy[i]
            if watch is None or _drifted(watch.region, box):
                region = _clipped(box, image.shape)
                if region is not None:    # someone walking re-anchors every frame: no picture taken yet
                    moves = 0 if watch is None else watch.moves
                    self._watches[track_id] = _Watch(region, None, t_s, moves)
            elif t_s - watch.sampled_s >= SAMPLE_S:
                self._sample(watch, tracked, i, image, t_s)
            if track_id in self._watches:
                alive[track_id] = self._watches[track_id].moves
        for track_id in set(self._watches) - set(alive):
            del self._watches[track_id]
        return alive

    def _sample(self, watch: _Watch, tracked: Detections, i: int, image: np.ndarray, t_s: float) -> None:
        moving = ~tracked.labelled((STATIC_OBJECT_LABEL,))
        moving[i] = False
        others = tracked.xyxy[moving]
        patch = _patch(image, watch.region)
        area = float((watch.region[2] - watch.region[0]) * (watch.region[3] - watch.region[1]))
        covered = len(others) and pairwise_intersections(watch.region[None].astype(np.float32),
                                                         others)[0].max() / max(area, 1.0) > OTHERS_OVERLAP
        if watch.patch is not None and not covered \
                and (cv2.absdiff(patch, watch.patch) > CHANGE_LEVEL).mean() >= MOVED_SHARE:
            watch.moves += 1
        watch.patch, watch.sampled_s = patch, t_s


def _drifted(region: np.ndarray, box: np.ndarray) -> bool:
    # Plain floats: numpy's per-call overhead on four numbers cost more than the sums.
    rx1, ry1, rx2, ry2 = region.tolist()
    bx1, by1, bx2, by2 = box.tolist()
    return (abs((bx1 + bx2 - rx1 - rx2) / 2) > REGION_DRIFT * max(rx2 - rx1, 1.0)
            or abs((by1 + by2 - ry1 - ry2) / 2) > REGION_DRIFT * max(ry2 - ry1, 1.0))


def _clipped(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    height, width = shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    return np.array([x1, y1, x2, y2]) if x2 - x1 >= 2 and y2 - y1 >= 2 else None


def _patch(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = region.tolist()
    crop = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return cv2.resize(crop, PATCH, interpolation=cv2.INTER_AREA)
