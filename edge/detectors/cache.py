"""Remembered detector output, for judging rule settings on the same recordings again.

Rules, trackers and zones are cheap; the model is not. `edge eval --cache DIR`
keeps every frame's detections keyed by the frame's content and the
detector's identity (model sha256, score and NMS thresholds), so a second
run with other rule settings gives the same boxes without running the model.
A cache entry is only ever the model's own output for identical pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge.detections import Detections
from edge.detectors.base import Detector


class CachedDetector:
    """A detector that answers from a cache file when it has seen the frame before."""

    def __init__(self, detector: Detector, folder: Path) -> None:
        self.detector = detector
        identity = f"{detector.card.sha256}:{detector.min_score}:{detector.nms_iou}"
        self.path = Path(folder) / f"detections-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.npz"
        self._rows: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = self._load()
        self._added = 0

    @property
    def name(self) -> str:
        return self.detector.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.detector.labels

    def detect(self, image: np.ndarray) -> Detections:
        key = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        row = self._rows.get(key)
        if row is None:
            found = self.detector.detect(image)
            row = self._rows[key] = (found.xyxy, found.scores, found.class_ids)
            self._added += 1
        return Detections(row[0].copy(), row[1].copy(), row[2].copy(), labels=self.labels)

    def save(self) -> None:
        """Write the cache if anything was added (atomically, so a killed run leaves the old file)."""
        if not self._added:
            return
        keys = list(self._rows)
        counts = np.array([len(self._rows[k][1]) for k in keys], dtype=np.int64)
        xyxy = np.concatenate([self._rows[k][0] for k in keys]).astype(np.float32) if keys else np.zeros((0, 4))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 16), counts=counts,
                 xyxy=xyxy.reshape(-1, 4),
                 scores=np.concatenate([self._rows[k][1] for k in keys]).astype(np.float32),
                 class_ids=np.concatenate([self._rows[k][2] for k in keys]).astype(np.int32))
        partial.replace(self.path)
        self._added = 0

    def _load(self) -> dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if not self.path.is_file():
            return {}
        with np.load(self.path, allow_pickle=False) as data:
            keys, counts = data["keys"], data["counts"]
            ends = np.cumsum(counts)
            starts = ends - counts
            xyxy, scores, class_ids = data["xyxy"], data["scores"], data["class_ids"]
        return {keys[i].tobytes(): (xyxy[a:b], scores[a:b], class_ids[a:b])
                for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist()))}
