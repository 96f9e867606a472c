"""The onnxruntime session every ONNX plugin uses, with options chosen once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.detectors.base import DetectorError


def open_session(model_path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # The box runs several cameras; intra-op threads are the knob, inter-op
    # parallelism only adds scheduling overhead for these sequential graphs.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise DetectorError(f"onnxruntime cannot load {model_path}: {exc}") from None


def normalised_blob(image: np.ndarray, size: tuple[int, int], mean: np.ndarray, std: np.ndarray,
                    to_rgb: bool) -> np.ndarray:
    """Resize a BGR frame to the model's input and return a 1x3xHxW float32 tensor."""
    import cv2

    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if to_rgb:
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    blob = (resized.astype(np.float32) - mean) / std
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])
