"""NanoDet (anchor-free, generalised focal loss heads) exported to ONNX.

Outputs per stride s (8, 16, 32) on a grid of (W/s) x (H/s) points: class
scores [1, N, C] with sigmoid applied, and box distributions [1, N, 4 * bins]
for the distances left, top, right, bottom as a softmax over ``bins`` values
of 0..bins-1 strides, measured from the centre of grid cell (x + 0.5, y + 0.5).
NMS is done here, not in the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.detectors.base import register
from edge.detectors.onnxplugin import OnnxDetector
from edge.detectors.postprocess import Candidates, best_class
from edge.detectors.runtime import TensorSpec

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Head:
    stride: int
    scores: str         # output name of the class scores
    boxes: str          # output name of the box distributions
    bins: int
    centres: np.ndarray  # grid cell centres in input pixels, one row per point


@register
class NanoDetDetector(OnnxDetector):
    family = "nanodet"

    def bind_outputs(self, outputs: list[TensorSpec]) -> None:
        """Pair score and box outputs by their point count, one pair per stride."""
        n_classes = len(self.card.labels)
        w, h = self.card.input_width, self.card.input_height
        by_count: dict[int | None, dict[str, tuple[str, int | None]]] = {}
        for out in outputs:
            if len(out.shape) != 3:
                raise self.error(f"output {out} is not [1, points, channels]")
            count, width = out.shape[1], out.shape[2]
            role = "cls" if width == n_classes else "box"
            by_count.setdefault(count, {})[role] = (out.name, width)
        self.heads = []
        for stride in STRIDES:
            gw, gh = w // stride, h // stride
            pair = by_count.get(gw * gh, {})
            if set(pair) != {"cls", "box"} or not pair["box"][1] or pair["box"][1] % 4:
                raise self.error(f"no score/box output pair for stride {stride} ({gw * gh} points, "
                                 f"{n_classes} classes); outputs: {', '.join(map(str, outputs))}")
            ys, xs = np.divmod(np.arange(gw * gh), gw)
            centres = (np.stack([xs, ys], axis=1).astype(np.float32) + 0.5) * stride
            self.heads.append(Head(stride, pair["cls"][0], pair["box"][0], pair["box"][1] // 4, centres))

    def decode(self, outputs: dict[str, np.ndarray], min_score: float) -> Candidates:
        boxes, scores, classes = [], [], []
        for head in self.heads:
            class_scores = outputs[head.scores][0]
            # Most points score low in every class: the row maximum rules them out
            # for a fraction of what the best class of every row would cost.
            keep = np.unique(np.flatnonzero(class_scores >= min_score) // class_scores.shape[1])
            if not len(keep):
                continue
            ids, best = best_class(class_scores[keep])
            boxes.append(self._decode_boxes(outputs[head.boxes][0][keep], head.centres[keep], head.bins, head.stride))
            scores.append(best)
            classes.append(ids)
        if not boxes:
            return Candidates.none()
        return Candidates(np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes))

    @staticmethod
    def _decode_boxes(dist: np.ndarray, centres: np.ndarray, bins: int, stride: int) -> np.ndarray:
        logits = dist.reshape(-1, 4, bins)
        logits = logits - logits.max(axis=2, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=2, keepdims=True)
        ltrb = (prob * np.arange(bins, dtype=np.float32)).sum(axis=2) * stride
        return np.concatenate([centres - ltrb[:, :2], centres + ltrb[:, 2:]], axis=1).astype(np.float32)
