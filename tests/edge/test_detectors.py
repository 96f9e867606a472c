"""Detector plugins on tiny ONNX graphs laid out like each family's head.

Each graph outputs constant tensors with known boxes; a frame of 128 x 64
goes into a 64 x 64 input, so letterboxing scales by 0.5 and pads 16 rows
above and below, and stretching scales x by 0.5 and y by 1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.detectors import DetectorError, create_detector, registered_families

FRAME_W, FRAME_H = 128, 64
WHITE = np.full((FRAME_H, FRAME_W, 3), 255, np.uint8)
BLACK = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
LABELS = ["person", "car", "bag"]

# Expected from both YOLO heads below, in frame pixels, best first.
YOLO_EXPECTED = [("person", 0.9, (48, 24, 80, 40)), ("car", 0.7, (48, 24, 80, 40)), ("bag", 0.6, (8, 0, 24, 8))]

ONNX_TYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8}


def head_model(path: Path, input_shape: list, outputs: dict[str, np.ndarray], *, input_dtype: str = "float32",
               seen: frozenset[str] = frozenset()) -> Path:
    """A graph whose outputs are constants; those in ``seen`` are scaled by the input's mean brightness (0..1)."""
    nodes = []
    pixels = "image"
    if input_dtype == "uint8":
        nodes.append(helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT))
        pixels = "pixels"
    to_unit = 1 / 255 if input_dtype == "uint8" else 1.0
    initializers = [numpy_helper.from_array(np.array(to_unit, np.float32), "to_unit"),
                    numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    nodes += [helper.make_node("ReduceMean", [pixels], ["mean"], keepdims=0),
              helper.make_node("Mul", ["mean", "to_unit"], ["brightness"]),
              helper.make_node("Mul", ["brightness", "zero"], ["nothing"])]
    graph_outputs = []
    for name, value in outputs.items():
        const = f"{name}_value"
        initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), const))
        op, operand = ("Mul", "brightness") if name in seen else ("Add", "nothing")
        nodes.append(helper.make_node(op, [const, operand], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(np.shape(value))))
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("image", ONNX_TYPES[input_dtype],
                                                                            input_shape)],
                              graph_outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_card(model: Path, family: str, **fields) -> Path:
    card = dict(name=model.stem, family=family, file=model.name,
                sha256=hashlib.sha256(model.read_bytes()).hexdigest(), input_width=64, input_height=64,
                color_order="rgb", labels=LABELS, licence="test", source="built by the test")
    card.update(fields)
    tables = {k: card.pop(k) for k in [k for k, v in card.items() if isinstance(v, dict)]}
    lines = [f"{k} = {toml_value(v)}" for k, v in card.items() if v is not None]
    for table, entries in tables.items():
        lines += [f"[{table}]"] + [f"{k} = {toml_value(v)}" for k, v in entries.items()]
    path = model.with_suffix(".card.toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def found(detections) -> list[tuple[str, float, tuple[float, ...]]]:
    return [(detections.label_of(i), round(float(detections.scores[i]), 3),
             tuple(round(float(v), 2) for v in detections.xyxy[i])) for i in range(len(detections))]


def yolov8_columns() -> np.ndarray:
    """[1, 4 + 3, 6]: cx, cy, w, h, person, car, bag per column."""
    rows = [
        (32, 32, 16, 8, 0.9, 0.0, 0.0),   # person -> frame (48, 24, 80, 40)
        (33, 32, 16, 8, 0.8, 0.0, 0.0),   # same person, weaker: NMS drops it
        (32, 32, 16, 8, 0.0, 0.7, 0.0),   # a car on the same spot: another class, kept
        (50, 20, 8, 8, 0.0, 0.0, 0.2),    # below min_score
        (8, 16, 8, 8, 0.0, 0.0, 0.6),     # reaches into the top padding: clipped to (8, 0, 24, 8)
        (8, 8, 8, 4, 0.95, 0.0, 0.0),     # wholly in the padding: dropped
    ]
    return np.asarray(rows, np.float32).T[None]


def yolov5_rows() -> np.ndarray:
    """[1, 5, 5 + 3]: cx, cy, w, h, objectness, person, car, bag per row."""
    rows = [
        (32, 32, 16, 8, 0.9, 1.0, 0.0, 0.0),    # 0.9 person
        (33, 32, 16, 8, 0.9, 0.85, 0.0, 0.0),   # 0.765 person, suppressed
        (32, 32, 16, 8, 0.8, 0.0, 0.875, 0.0),  # 0.7 car
        (50, 20, 8, 8, 0.3, 0.0, 0.0, 1.0),     # 0.3: below min_score
        (8, 16, 8, 8, 1.0, 0.0, 0.0, 0.6),      # 0.6 bag, clipped
    ]
    return np.asarray(rows, np.float32)[None]


YOLO_FLOAT_CARD = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0])


@pytest.fixture
def yolov8_model(tmp_path: Path) -> Path:
    return head_model(tmp_path / "y8.onnx", [1, 3, 64, 64], {"output0": yolov8_columns()})


@pytest.fixture
def yolov5_model(tmp_path: Path) -> Path:
    return head_model(tmp_path / "y5.onnx", ["batch", 3, 64, 64], {"output0": yolov5_rows()})


def ssd_outputs(names=("detection_boxes", "detection_scores", "detection_classes", "num_detections")):
    boxes = [[0.25, 0.25, 0.75, 0.5],     # y1, x1, y2, x2: person -> frame (32, 16, 64, 48)
             [0.5, 0.5, 1.0, 1.0],        # car -> frame (64, 32, 128, 64)
             [0.0, 0.0, 0.5, 0.5],        # label-map id 4: no such label, dropped
             [0.0, 0.0, 0.1, 0.1]]        # beyond the count: ignored
    values = (np.asarray([boxes], np.float32), np.asarray([[0.9, 0.8, 0.95, 0.99]], np.float32),
              np.asarray([[1, 2, 4, 1]], np.float32), np.asarray([3], np.float32))
    return dict(zip(names, values))


SSD_EXPECTED = [("person", 0.9, (32, 16, 64, 48)), ("car", 0.8, (64, 32, 128, 64))]


@pytest.fixture
def ssd_model(tmp_path: Path) -> Path:
    return head_model(tmp_path / "ssd.onnx", [1, 64, 64, 3], ssd_outputs(), input_dtype="uint8",
                      seen=frozenset({"detection_scores"}))


def test_every_family_is_registered():
    assert {"nanodet", "yolov5", "yolov8", "ssd"} <= set(registered_families())


def test_yolov8_boxes_are_mapped_back_through_the_letterbox(yolov8_model):
    write_card(yolov8_model, "yolov8", **YOLO_FLOAT_CARD)
    detector = create_detector(yolov8_model, family="yolov8", min_score=0.35, nms_iou=0.5)
    assert found(detector.detect(WHITE)) == YOLO_EXPECTED


def test_yolov5_scores_are_objectness_times_class(yolov5_model):
    write_card(yolov5_model, "yolov5", **YOLO_FLOAT_CARD)
    detector = create_detector(yolov5_model, min_score=0.35, nms_iou=0.5)
    assert found(detector.detect(WHITE)) == YOLO_EXPECTED


def test_yolo_with_stretch_resize_maps_each_axis_by_its_own_scale(yolov8_model):
    write_card(yolov8_model, "yolov8", resize="stretch", **YOLO_FLOAT_CARD)
    detector = create_detector(yolov8_model, min_score=0.35)
    assert found(detector.detect(WHITE)) == [("person", 0.95, (8, 6, 24, 10)),  # no padding to fall into
                                             ("person", 0.9, (48, 28, 80, 36)), ("car", 0.7, (48, 28, 80, 36)),
                                             ("bag", 0.6, (8, 12, 24, 20))]


def test_ssd_normalised_yx_boxes_become_frame_pixels(ssd_model):
    write_card(ssd_model, "ssd", labels=["person", "car"])
    detector = create_detector(ssd_model, min_score=0.35)
    assert found(detector.detect(WHITE)) == SSD_EXPECTED


def test_ssd_reads_raw_pixels(ssd_model):
    """The graph scales its scores by the input's brightness: a black frame scores nothing."""
    write_card(ssd_model, "ssd", labels=["person", "car"])
    assert len(create_detector(ssd_model, min_score=0.35).detect(BLACK)) == 0


def test_ssd_output_names_and_class_offset_come_from_the_card(tmp_path):
    names = ("boxes:0", "scores:0", "classes:0", "count:0")
    model = head_model(tmp_path / "tf1.onnx", [1, 64, 64, 3], ssd_outputs(names), input_dtype="uint8")
    write_card(model, "ssd", labels=["background", "person", "car"], class_id_offset=0,
               outputs={"boxes": "boxes", "scores": "scores", "classes": "classes", "count": "count"})
    detections = found(create_detector(model, min_score=0.35).detect(WHITE))
    assert detections == SSD_EXPECTED


def test_labels_can_come_from_a_labels_file(yolov8_model):
    (yolov8_model.parent / "y8.labels.txt").write_text("\n".join(LABELS) + "\n")
    write_card(yolov8_model, "yolov8", labels=None, labels_file="y8.labels.txt", **YOLO_FLOAT_CARD)
    assert create_detector(yolov8_model).labels == tuple(LABELS)


@pytest.mark.parametrize("family, fields, message", [
    ("yolov8", dict(labels=[f"c{i}" for i in range(80)]), r"no output laid out as \[1,84,\?\]"),
    ("yolov8", dict(input_width=32, input_height=32), r"model input image \[1,3,64,64\] float32 does not fit"),
    ("yolov8", dict(input_layout="nhwc"), r"describes \[1,64,64,3\] float32"),
    ("yolov8", dict(input_dtype="uint8", mean=None, std=None), r"describes \[1,3,64,64\] uint8"),
    ("yolov5", {}, r"no output laid out as \[1,\?,8\]"),
    ("ssd", dict(input_layout="nchw", input_dtype="float32"), r"no output named 'detection_boxes'"),
    ("nanodet", {}, r"no score/box output pair for stride 8"),
])
def test_a_card_that_does_not_fit_the_model_is_refused(yolov8_model, family, fields, message):
    write_card(yolov8_model, family, **{**YOLO_FLOAT_CARD, **fields})
    with pytest.raises(DetectorError, match=message):
        create_detector(yolov8_model)


@pytest.mark.parametrize("family, fields, message", [
    ("yolov8", dict(class_id_offset=1), r"class_id_offset\n  Extra inputs are not permitted"),
    ("ssd", dict(mean=[1.0, 2.0, 3.0]), r"a uint8 input takes raw pixels"),
    ("yolov8", dict(resize="crop"), r"resize\n  Input should be 'stretch' or 'letterbox'"),
    ("ssd", dict(outputs={"boxes": "b", "logits": "l"}), r"outputs.logits\n  Extra inputs are not permitted"),
    ("retinanet", {}, r"no detector plugin for family 'retinanet'"),
])
def test_an_invalid_card_is_refused_with_the_field_named(yolov8_model, family, fields, message):
    write_card(yolov8_model, family, **fields)
    with pytest.raises(DetectorError, match=message):
        create_detector(yolov8_model)


def reshaped_by_brightness_model(path: Path) -> Path:
    """Outputs 36 zeros shaped [1, 9 x max(input), -1]: a layout onnxruntime cannot know before the run."""
    const = lambda name, value, dtype: numpy_helper.from_array(np.asarray(value, dtype), name)  # noqa: E731
    nodes = [helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
             helper.make_node("Mul", ["peak", "nine"], ["rows_f"]),
             helper.make_node("Cast", ["rows_f"], ["rows"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["rows", "one_dim"], ["rows_1d"]),
             helper.make_node("Concat", ["batch", "rows_1d", "rest"], ["shape"], axis=0),
             helper.make_node("Reshape", ["zeros", "shape"], ["output0"])]
    initializers = [const("nine", 9.0, np.float32), const("one_dim", [1], np.int64), const("batch", [1], np.int64),
                    const("rest", [-1], np.int64), const("zeros", np.zeros(36), np.float32)]
    graph = helper.make_graph(nodes, "odd", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, "c", "a"])],
                              initializer=initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_an_output_that_breaks_the_family_layout_at_run_time_is_an_error(tmp_path):
    model = reshaped_by_brightness_model(tmp_path / "odd.onnx")
    write_card(model, "yolov8", **YOLO_FLOAT_CARD)
    detector = create_detector(model)
    with pytest.raises(DetectorError, match=r"output output0 has shape \[1,9,4\], expected \[1,7,\?\]"):
        detector.detect(WHITE)
