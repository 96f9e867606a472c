"""YOLOv5-style exports: one output [1, N, 5 + C].

Each row is cx, cy, w, h in input pixels, an objectness score, and C class
scores (sigmoid applied); a box's score is objectness x its best class score.
NMS is done here, not in the graph.
"""

from __future__ import annotations

import numpy as np

from edge.detectors.base import register
from edge.detectors.onnxplugin import OnnxDetector
from edge.detectors.postprocess import Candidates, best_class, cxcywh_to_xyxy
from edge.detectors.runtime import Shape, TensorSpec
from edge.detectors.yolo import YoloCard


@register
class YoloV5Detector(OnnxDetector):
    family = "yolov5"
    card_type = YoloCard

    def bind_outputs(self, outputs: list[TensorSpec]) -> None:
        self.head_shape: Shape = (1, None, 5 + len(self.card.labels))
        self.head = self.single_head(outputs, self.head_shape, f"cx, cy, w, h, objectness and "
                                     f"{len(self.card.labels)} class scores, one per label")

    def decode(self, outputs: dict[str, np.ndarray], min_score: float) -> Candidates:
        rows = outputs[self.head]
        self.require_shape(rows, self.head_shape, f"output {self.head}")
        rows = rows[0]
        # A class score is at most 1, so rows whose objectness is already too low cannot pass.
        rows = rows[rows[:, 4] >= min_score]
        class_ids, class_scores = best_class(rows[:, 5:])
        scores = rows[:, 4] * class_scores
        keep = scores >= min_score
        return Candidates(cxcywh_to_xyxy(rows[keep, :4]), scores[keep].astype(np.float32), class_ids[keep])
