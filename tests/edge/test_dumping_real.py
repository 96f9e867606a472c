"""Left-object rule on real footage: an object left on the verge is reported, one carried through is not."""

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import Frame, file_frames
from edge.config import load_table, parse_config
from edge.detectors import create_detector
from edge.pipeline import CameraPipeline

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "firmware_configs" / "demo-campus.toml"
CLIP = ROOT / "tests" / "data" / "vtest_cut.mp4"
CLOTH_BOX = (62, 490, 164, 532)   # the yellow cloth on the lawn in the first frame


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return list(file_frames("road", str(CLIP), 5.0, start_ms=0))


@pytest.fixture(scope="module")
def config():
    table = load_table(DEMO)
    table["rules"]["illegal_dumping"]["dwell_s"] = 6
    return parse_config(copy.deepcopy(table), str(DEMO), DEMO.parent)


@pytest.fixture(scope="module")
def detector(config):
    return create_detector(config.detector.model, min_score=config.detector.min_score)


def cloth(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    x1, y1, x2, y2 = CLOTH_BOX
    patch = frame.image[y1:y2, x1:x2].copy()
    border = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    alpha = (cv2.absdiff(patch, np.median(border, axis=0).astype(np.uint8)).sum(axis=2) > 90).astype(np.float32)
    return patch, cv2.GaussianBlur(alpha, (5, 5), 0)[..., None]


def with_object(frame: Frame, patch, alpha, top_left) -> Frame:
    x, y = top_left
    h, w = patch.shape[:2]
    image = frame.image.copy()
    region = image[y:y + h, x:x + w].astype(np.float32)
    image[y:y + h, x:x + w] = (alpha * patch + (1 - alpha) * region).astype(np.uint8)
    return Frame(frame.camera, frame.index, frame.t_s, frame.ts_ms, image)


def run(config, detector, frames):
    pipeline = CameraPipeline(config.cameras[0], config.rules, detector, config.static_objects)
    hits = [hit for frame in frames for hit in pipeline.process(frame).hits]
    return hits + pipeline.finish(frames[-1].t_s)


def test_an_object_left_on_the_verge_is_one_incident(config, detector, frames):
    patch, alpha = cloth(frames[0])
    scene = [with_object(f, patch, alpha, (560, 500)) if f.t_s >= 6 else f for f in frames]
    new = [h for h in run(config, detector, scene) if h.event == "new"]
    assert [(h.category.value, h.zone.name, h.label) for h in new] == [
        ("illegal_dumping", "verge-east", "static_object")]
    assert 10 <= new[0].t_s <= 18
    x1, y1, x2, y2 = new[0].bbox_px
    assert x1 < 600 < x2 and y1 < 520 < y2


def test_an_object_carried_through_the_verge_is_not(config, detector, frames):
    patch, alpha = cloth(frames[0])
    scene = []
    for f in frames:
        step = int((f.t_s - 6) * 5)     # 5 px per frame, 25 px/s: walking pace at this distance
        if 0 <= step and 480 + step * 5 < 640:
            f = with_object(f, patch, alpha, (480 + step * 5, 500 - step))
        scene.append(f)
    assert [h for h in run(config, detector, scene) if h.category.value == "illegal_dumping"] == []
