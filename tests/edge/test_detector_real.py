"""The shipped NanoDet model on real footage (tests/data/vtest_cut.mp4)."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import file_frames
from edge.cli import SHIPPED_MODEL
from edge.cli import main as edge_main
from edge.detectors import DetectorError, create_detector
from edge.tracker import IouTracker

pytestmark = pytest.mark.model

DATA = Path(__file__).resolve().parents[1] / "data"
CLIP = DATA / "vtest_cut.mp4"
# The three people and the parked van in the first frame, measured by hand.
PEOPLE_FRAME0 = [(499, 158, 530, 234), (640, 239, 684, 324), (251, 220, 283, 309)]
VAN_FRAME0 = (652, 44, 724, 98)


@pytest.fixture(scope="module")
def detector():
    return create_detector(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def first_frame():
    return next(file_frames("road", str(CLIP), 5.0, start_ms=0)).image


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_finds_the_people_and_the_van_in_a_real_frame(detector, first_frame):
    found = detector.detect(first_frame)
    people = [found.xyxy[i] for i in range(len(found)) if found.label_of(i) == "person" and found.scores[i] > 0.6]
    assert len(people) == 3
    for expected in PEOPLE_FRAME0:
        assert max(iou(expected, box) for box in people) > 0.8
    vehicles = [found.xyxy[i] for i in range(len(found)) if found.label_of(i) in ("truck", "car")]
    assert max(iou(VAN_FRAME0, box) for box in vehicles) > 0.8


def test_people_keep_their_track_ids_while_they_walk(detector):
    tracker = IouTracker()
    present = []
    for frame in file_frames("road", str(CLIP), 5.0, start_ms=0):
        if frame.t_s > 2.0:
            break
        tracked = tracker.update(detector.detect(frame.image), frame.t_s)
        people = tracked.with_labels({"person"})
        present.append({int(t) for t in people.track_ids})
    # Over 2 s the three walkers of the first frame move up to a box width per
    # frame; each keeps the id it got in the first frame (a missed frame is allowed).
    first = present[0]
    assert len(first) == 3 and len(present) == 11, present
    for track_id in first:
        assert sum(track_id in ids for ids in present) >= 10, present


def test_detect_command_prints_json(capsys, tmp_path, first_frame):
    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), first_frame)
    annotated = tmp_path / "boxes.jpg"
    assert edge_main(["detect", str(image), "--json", "--annotate", str(annotated)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "nanodet-g-416" and report["width"] == 768
    assert sum(d["label"] == "person" for d in report["detections"]) >= 3
    assert cv2.imread(str(annotated)).shape == first_frame.shape


def test_a_model_whose_bytes_changed_is_refused(tmp_path):
    copy = tmp_path / SHIPPED_MODEL.name
    shutil.copy(SHIPPED_MODEL, copy)
    shutil.copy(SHIPPED_MODEL.with_suffix(".card.toml"), copy.with_suffix(".card.toml"))
    shutil.copy(SHIPPED_MODEL.with_name("nanodet-g-416.labels.txt"), tmp_path)
    with copy.open("r+b") as f:
        f.seek(-10, 2)
        f.write(b"\x00" * 10)
    with pytest.raises(DetectorError, match="sha256"):
        create_detector(copy)


def test_a_model_without_a_card_or_of_another_family_is_refused(tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"onnx")
    with pytest.raises(DetectorError, match="model card"):
        create_detector(bare)
    with pytest.raises(DetectorError, match="asks for a 'yolov8' detector"):
        create_detector(SHIPPED_MODEL, family="yolov8")


def test_blank_frame_gives_no_detections(detector):
    assert len(detector.detect(np.zeros((480, 640, 3), np.uint8))) == 0


def test_detect_command_writes_an_annotated_video(tmp_path, capsys):
    out = tmp_path / "boxes.mp4"
    assert edge_main(["--log-level", "WARNING", "detect", str(CLIP), "--fps", "1", "--json",
                      "--annotate", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["frames"]) == 20
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20


def test_detect_command_tracks_a_video_and_flags_what_stays_put(capsys):
    assert edge_main(["--log-level", "WARNING", "detect", str(CLIP), "--fps", "2", "--json"]) == 0
    frames = json.loads(capsys.readouterr().out)["frames"]
    late = [d for f in frames if f["t_s"] >= 8.0 for d in f["detections"]]
    # The van parked at the top right stays put all clip long: one track, stationary once 5 s have passed.
    van = [d for d in late if d["label"] in ("truck", "car") and iou(VAN_FRAME0, d["bbox"]) > 0.6]
    assert van and all(d["stationary"] for d in van) and len({d["track"] for d in van}) == 1
    # People walk through: most of their sightings are not stationary.
    people = [d for d in late if d["label"] == "person" and d["score"] > 0.6]
    assert len(people) > 20 and sum(d["stationary"] for d in people) < len(people) / 4
