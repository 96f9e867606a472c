"""The value passed between vision stages: parallel arrays, one row per object."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


@dataclass(frozen=True)
class Detections:
    """Boxes in pixels (x1, y1, x2, y2), scores, class ids, and track ids (-1: untracked).

    ``labels`` maps class ids to names for this detector. Selecting with a
    boolean mask or index array returns a new container; nothing mutates.
    """

    xyxy: np.ndarray = field(default_factory=_empty_boxes)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    track_ids: np.ndarray | None = None
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError("xyxy, scores and class_ids must have the same length")
        if self.track_ids is not None and len(self.track_ids) != n:
            raise ValueError("track_ids must have the same length as xyxy")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        return replace(
            self,
            xyxy=self.xyxy[index],
            scores=self.scores[index],
            class_ids=self.class_ids[index],
            track_ids=None if self.track_ids is None else self.track_ids[index],
        )

    def label_of(self, i: int) -> str:
        cid = int(self.class_ids[i])
        return self.labels[cid] if 0 <= cid < len(self.labels) else str(cid)

    def label_names(self) -> np.ndarray:
        """The label of every row, as an object array (class ids outside the labels keep their number)."""
        names = np.asarray([*self.labels, ""], dtype=object)
        ids = np.where((self.class_ids >= 0) & (self.class_ids < len(self.labels)), self.class_ids, len(self.labels))
        out = names[ids]
        unknown = ids == len(self.labels)
        if unknown.any():
            out[unknown] = [str(c) for c in self.class_ids[unknown]]
        return out

    def with_labels(self, wanted: set[str]) -> Detections:
        ids = [i for i, name in enumerate(self.labels) if name in wanted]
        return self[np.isin(self.class_ids, ids)]

    def with_tracks(self, track_ids: np.ndarray) -> Detections:
        return replace(self, track_ids=np.asarray(track_ids, dtype=np.int64))

    def foot_points(self) -> np.ndarray:
        """Bottom-centre of each box: where the object touches the ground."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)

    @classmethod
    def empty(cls, labels: tuple[str, ...] = ()) -> Detections:
        return cls(labels=labels)
