"""TensorFlow-style SSD end-to-end graphs (decoding and NMS inside the graph).

Four outputs, found by name: boxes [1, N, 4] as normalised y1, x1, y2, x2 of
the model input; scores [1, N]; classes [1, N] as label-map ids (floats);
count [1], the number of valid rows. Label-map ids usually start at 1 (0 is
the background), hence ``class_id_offset``: label index = id - offset. Ids
outside the labels are dropped. NMS is repeated here, class-aware, which
changes nothing for a graph that already did it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.detectors.base import ModelCard, register
from edge.detectors.onnxplugin import OnnxDetector
from edge.detectors.postprocess import Candidates
from edge.detectors.runtime import Shape, TensorSpec, format_shape, shape_fits


class SsdOutputNames(BaseModel):
    """Output names of the graph; a TF1 export's ``name:0`` matches ``name`` too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    boxes: str = "detection_boxes"
    scores: str = "detection_scores"
    classes: str = "detection_classes"
    count: str = "num_detections"


class SsdCard(ModelCard):
    """TF object-detection exports take raw RGB pixels, NHWC, so those are the defaults."""

    input_layout: Literal["nchw", "nhwc"] = "nhwc"
    input_dtype: Literal["float32", "uint8"] = "uint8"
    class_id_offset: int = Field(1, ge=0, description="Label-map id of the first label (1 when 0 is background).")
    outputs: SsdOutputNames = Field(default_factory=SsdOutputNames)


def _matches(output_name: str, wanted: str) -> bool:
    return output_name in (wanted, f"{wanted}:0")


@register
class SsdDetector(OnnxDetector):
    family = "ssd"
    card_type = SsdCard
    card: SsdCard

    def bind_outputs(self, outputs: list[TensorSpec]) -> None:
        wanted = self.card.outputs
        expected: dict[str, Shape] = {"boxes": (1, None, 4), "scores": (1, None), "classes": (1, None), "count": (1,)}
        self.names: dict[str, str] = {}
        self.shapes = expected
        for role, shape in expected.items():
            name = getattr(wanted, role)
            spec = next((o for o in outputs if _matches(o.name, name)), None)
            if spec is None:
                raise self.error(f"no output named {name!r} for the {role} (outputs: {', '.join(map(str, outputs))}); "
                                 "name it in the card's [outputs] table")
            if not shape_fits(spec.shape, shape):
                raise self.error(f"{role} output {spec} is not laid out as {format_shape(shape)}")
            self.names[role] = spec.name
        rows = {spec.shape[1] for spec in outputs if spec.name in (self.names["boxes"], self.names["scores"],
                                                                     self.names["classes"])} - {None}
        if len(rows) > 1:
            raise self.error(f"boxes, scores and classes outputs disagree on the number of rows: {sorted(rows)}")

    def decode(self, outputs: dict[str, np.ndarray], min_score: float) -> Candidates:
        for role, shape in self.shapes.items():
            self.require_shape(outputs[self.names[role]], shape, f"{role} output {self.names[role]}")
        boxes = outputs[self.names["boxes"]][0]
        count = max(0, min(int(outputs[self.names["count"]][0]), len(boxes)))
        boxes = boxes[:count]
        scores = outputs[self.names["scores"]][0][:count].astype(np.float32)
        class_ids = np.rint(outputs[self.names["classes"]][0][:count]).astype(np.int32) - self.card.class_id_offset
        keep = (scores >= min_score) & (class_ids >= 0) & (class_ids < len(self.card.labels))
        size = np.array([self.card.input_width, self.card.input_height] * 2, dtype=np.float32)
        xyxy = boxes[keep][:, [1, 0, 3, 2]].astype(np.float32) * size
        return Candidates(xyxy, scores[keep], class_ids[keep])
