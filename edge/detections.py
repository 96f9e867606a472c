"""The value passed between vision stages: parallel arrays, one row per object."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np


@functools.lru_cache(maxsize=256)
def _label_table(labels: tuple[str, ...], wanted: tuple[str, ...]) -> np.ndarray:
    """Per class id: is its label wanted? Looked up per frame, built once."""
    return np.array([name in wanted for name in labels], dtype=bool)


def foot_points(xyxy: np.ndarray) -> np.ndarray:
    """Bottom-centre of each box: where the object touches the ground."""
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


@dataclass(frozen=True)
class Detections:
    """Boxes in pixels (x1, y1, x2, y2), scores, class ids; after tracking, track ids and stationary flags.

    ``labels`` maps class ids to names for this detector. Selecting with a
    boolean mask or index array returns a new container; nothing mutates.
    """

    xyxy: np.ndarray = field(default_factory=_empty_boxes)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    track_ids: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    stationary: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError("xyxy, scores and class_ids must have the same length")
        if self.track_ids is not None and len(self.track_ids) != n:
            raise ValueError("track_ids must have the same length as xyxy")
        if self.stationary is not None and len(self.stationary) != n:
            raise ValueError("stationary must have the same length as xyxy")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        return replace(
            self,
            xyxy=self.xyxy[index],
            scores=self.scores[index],
            class_ids=self.class_ids[index],
            track_ids=None if self.track_ids is None else self.track_ids[index],
            stationary=None if self.stationary is None else self.stationary[index],
        )

    def label_of(self, i: int) -> str:
        cid = int(self.class_ids[i])
        return self.labels[cid] if 0 <= cid < len(self.labels) else str(cid)

    def labelled(self, wanted: tuple[str, ...]) -> np.ndarray:
        """Boolean mask of the rows whose label is one of ``wanted``.

        Class ids outside ``labels`` go by their number as a string, as in ``label_of``.
        """
        table = _label_table(self.labels, wanted)
        known = self.class_ids.astype(np.uint32) < len(self.labels)     # negative ids wrap round to large
        if known.all():
            return table[self.class_ids]
        mask = np.zeros(len(self), dtype=bool)
        mask[known] = table[self.class_ids[known]]
        for i in np.flatnonzero(~known):
            mask[i] = str(int(self.class_ids[i])) in wanted
        return mask

    def with_labels(self, wanted: set[str]) -> Detections:
        return self[self.labelled(tuple(sorted(wanted)))]

    def with_tracks(self, track_ids: np.ndarray, stationary: np.ndarray | None = None) -> Detections:
        return replace(self, track_ids=np.asarray(track_ids, dtype=np.int64),
                       stationary=None if stationary is None else np.asarray(stationary, dtype=bool))

    def foot_points(self) -> np.ndarray:
        return foot_points(self.xyxy)

    @classmethod
    def empty(cls, labels: tuple[str, ...] = ()) -> Detections:
        return cls(labels=labels)
