"""The box: a camera whose pixel zone lies outside its frame goes down with the reason in its health."""

import copy
import json
import logging
from pathlib import Path

import pytest

from edge.config import parse_config
from contract import Health
from edge.runtime import Box

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "tests" / "data" / "vtest_cut.mp4"   # 768 x 576, 20 s
WIDE = [[10, 10], [900, 40], [500, 500]]           # drawn for a larger picture: point 1 sticks out
FITS = [[10, 10], [700, 40], [500, 500]]


def box_config(kiosk: list) -> dict:
    """Two cameras on the clip; north has a pixel zone ``kiosk``."""
    zone = {"type": "no_vending", "lat": 48.2, "lon": 16.3}
    camera = {"source": str(CLIP), "fps": 0.5, "realtime": False}
    return {
        "version": 1, "box": "box-1", "district": "old-town", "remote_config": {"accept_unsigned": True},
        "detector": {"model": str(ROOT / "models" / "nanodet-g-416.onnx")},
        "cameras": [
            {**camera, "name": "north", "zones": [
                {**zone, "name": "plaza", "polygon": [[0, 0], [1, 0], [1, 1]]},
                {**zone, "name": "kiosk", "coords": "pixel", "polygon": kiosk}]},
            {**camera, "name": "south", "zones": [{**zone, "name": "plaza", "polygon": [[0, 0], [1, 0], [1, 1]]}]},
        ],
    }


def spooled_health(box: Box) -> list[Health]:
    return [Health.decode(m.payload) for m in box.outbox.spool.after(0, 1000) if m.topic.endswith("/health")]


def test_a_pixel_zone_outside_the_frame_takes_its_camera_down_and_the_others_run(tmp_path, caplog):
    box = Box(parse_config(box_config(WIDE)), mqtt_url="mqtt://127.0.0.1:9", spool_path=tmp_path / "spool.db")
    with caplog.at_level(logging.ERROR, logger="edge.runtime"):
        box.run()
    last = spooled_health(box)[-1]
    box.close(drain_timeout_s=0.1)

    assert "camera.zone_outside_frame camera=north zone=kiosk frame=768x576 points=[(1, (900.0, 40.0))]" in caplog.text
    assert last.cameras["north"].state == "down"
    assert last.cameras["north"].reason == "zone 'kiosk': point 1 (900, 40) lies outside the 768x576 frame"
    assert box.cameras["north"].frames == 0
    assert last.cameras["south"].state == "ended" and last.cameras["south"].reason is None
    assert box.cameras["south"].frames == 10


def test_a_live_change_with_a_zone_outside_the_frame_is_rejected(tmp_path):
    table = box_config(FITS)
    box = Box(parse_config(copy.deepcopy(table)), file_table=table, mqtt_url="mqtt://127.0.0.1:9",
              spool_path=tmp_path / "spool.db")
    box.cameras["north"].frame_size = (768, 576)   # as after its first frame
    patch = {"cameras": [{"name": "north", "zones": [{"name": "kiosk", "type": "no_vending", "coords": "pixel",
                                                      "polygon": WIDE, "lat": 48.2, "lon": 16.3}]}]}
    before = box.config_hash
    box._on_message(str(box.config_topic), json.dumps(patch).encode())
    [ack] = [json.loads(m.payload) for m in box.outbox.spool.after(0, 10) if m.topic.endswith("/config/ack")]
    box.close(drain_timeout_s=0.1)

    assert ack["status"] == "rejected"
    assert ack["reason"] == "cameras.0.zones.0.polygon: point 1 (900, 40) lies outside the 768x576 frame"
    assert box.config_hash == before
