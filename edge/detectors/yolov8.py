"""YOLOv8 / YOLO11-style exports: one output [1, 4 + C, N], one column per box.

Each column is cx, cy, w, h in input pixels and C class scores (sigmoid
applied, no objectness); a box's score is its best class score. NMS is done
here, not in the graph.
"""

from __future__ import annotations

import numpy as np

from edge.detectors.base import register
from edge.detectors.onnxplugin import OnnxDetector
from edge.detectors.postprocess import Candidates, best_class, cxcywh_to_xyxy
from edge.detectors.runtime import Shape, TensorSpec
from edge.detectors.yolo import YoloCard


@register
class YoloV8Detector(OnnxDetector):
    family = "yolov8"
    card_type = YoloCard

    def bind_outputs(self, outputs: list[TensorSpec]) -> None:
        self.head_shape: Shape = (1, 4 + len(self.card.labels), None)
        self.head = self.single_head(outputs, self.head_shape,
                                     f"cx, cy, w, h and {len(self.card.labels)} class scores, one per label")

    def decode(self, outputs: dict[str, np.ndarray], min_score: float) -> Candidates:
        columns = outputs[self.head]
        self.require_shape(columns, self.head_shape, f"output {self.head}")
        rows = columns[0].T
        class_ids, scores = best_class(rows[:, 4:])
        keep = scores >= min_score
        return Candidates(cxcywh_to_xyxy(rows[keep, :4]), scores[keep], class_ids[keep])
