"""The detect loop every ONNX family shares: card-shaped input, run, decode, map back.

A family subclasses ``OnnxDetector`` and supplies two things: ``bind_outputs``
(find the family's head among the outputs, refusing at load a model without one) and ``decode``
(outputs -> candidate boxes in model-input pixels).
"""

from __future__ import annotations

import threading
from abc import abstractmethod

import numpy as np

from edge.detections import Detections
from edge.detectors.base import Detector, DetectorError
from edge.detectors.postprocess import Candidates, to_detections
from edge.detectors.preprocess import InputBuffers, model_input
from edge.detectors.runtime import Shape, TensorSpec, format_shape, input_specs, open_session, output_specs, shape_fits


class OnnxDetector(Detector):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session = open_session(self.model_path, self.threads)
        self.input = self._checked_input(input_specs(self.session))
        self.outputs = output_specs(self.session)
        self.bind_outputs(self.outputs)
        # Cameras share one detector from their own threads: one input buffer per thread.
        self._per_thread = threading.local()

    def error(self, message: str) -> DetectorError:
        return DetectorError(f"{self.model_path.name} ({self.family} card): {message}")

    def expected_input_shape(self) -> Shape:
        card = self.card
        if card.input_layout == "nchw":
            return (1, 3, card.input_height, card.input_width)
        return (1, card.input_height, card.input_width, 3)

    def _checked_input(self, inputs: list[TensorSpec]) -> TensorSpec:
        if len(inputs) != 1:
            raise self.error(f"the model takes {len(inputs)} inputs ({', '.join(map(str, inputs))}); "
                             "one image input is supported")
        spec = inputs[0]
        expected = self.expected_input_shape()
        if not shape_fits(spec.shape, expected) or spec.dtype != self.card.input_dtype:
            raise self.error(
                f"model input {spec} does not fit the card, which describes {format_shape(expected)} "
                f"{self.card.input_dtype} (input_layout={self.card.input_layout}, input_width={self.card.input_width}, "
                f"input_height={self.card.input_height}, input_dtype={self.card.input_dtype})")
        return spec

    def require_shape(self, array: np.ndarray, expected: Shape, what: str) -> None:
        """Check an output at run time, when the dimensions the model left open are known."""
        if not shape_fits(array.shape, expected):
            raise self.error(f"{what} has shape {format_shape(array.shape)}, expected {format_shape(expected)}")

    def single_head(self, outputs: list[TensorSpec], shape: Shape, layout: str) -> str:
        """The name of the one output laid out as ``shape``; ``layout`` says what its columns hold."""
        head = next((o for o in outputs if shape_fits(o.shape, shape)), None)
        if head is None:
            raise self.error(f"no output laid out as {format_shape(shape)} ({layout}); "
                             f"outputs: {', '.join(map(str, outputs))}")
        return head.name

    @abstractmethod
    def bind_outputs(self, outputs: list[TensorSpec]) -> None:
        """Note where each part of this family's head is; raise ``self.error(...)`` if it is not there."""

    @abstractmethod
    def decode(self, outputs: dict[str, np.ndarray], min_score: float) -> Candidates:
        """Candidates scoring at least ``min_score``, boxes in model-input pixels."""

    def detect(self, image: np.ndarray) -> Detections:
        thresholds = self.thresholds
        buffers = getattr(self._per_thread, "buffers", None)
        if buffers is None:
            buffers = self._per_thread.buffers = InputBuffers()
        tensor, transform = model_input(image, self.card, buffers)
        names = [spec.name for spec in self.outputs]
        try:
            values = self.session.run(names, {self.input.name: tensor})
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise self.error(f"inference failed: {exc}") from None
        found = self.decode(dict(zip(names, values)), thresholds.min_score)
        height, width = image.shape[:2]
        return to_detections(found, transform, (width, height), self.labels, thresholds.nms_iou)
