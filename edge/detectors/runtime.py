"""The onnxruntime session every ONNX plugin uses, and what its tensors look like.

onnxruntime is imported when a session is opened, not with this module: the
box config imports the plugins to learn the detector types, and validating a
config must not load an inference engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.detectors.base import DetectorError

if TYPE_CHECKING:
    import onnxruntime as ort

# A dimension the model leaves open (symbolic or unknown) is None; so is a
# dimension the caller does not care about in an expected shape.
Shape = tuple[int | None, ...]

_ONNX_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16",
               "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(double)": "float64"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Shape
    dtype: str

    def __str__(self) -> str:
        return f"{self.name} {format_shape(self.shape)} {self.dtype}"


def open_session(model_path: Path, threads: int) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # The box runs several cameras; intra-op threads are the knob, inter-op
    # parallelism only adds scheduling overhead for these sequential graphs.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle worker threads would otherwise spin after each run and take the CPU
    # from the tracking, rules and OpenCV work that follows on the same cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise DetectorError(f"onnxruntime cannot load {model_path}: {exc}") from None


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, shape, _ONNX_TYPES.get(arg.type, arg.type))


def input_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    return [_spec(arg) for arg in session.get_inputs()]


def output_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    return [_spec(arg) for arg in session.get_outputs()]


def format_shape(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def shape_fits(actual: Sequence[int | None], expected: Sequence[int | None]) -> bool:
    """Same rank, and every dimension known on both sides agrees."""
    return len(actual) == len(expected) and all(
        a is None or e is None or a == e for a, e in zip(actual, expected))

