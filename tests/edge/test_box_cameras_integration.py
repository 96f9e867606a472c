"""A box whose camera fails keeps running its other cameras and says so in its health."""

import copy
import json
import queue
import threading
import time
from pathlib import Path

import pytest

from edge.config import load_table, parse_config
from edge.runtime import Box

pytestmark = [pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "firmware_configs" / "demo-campus.toml"


def test_a_dead_camera_is_reported_down_and_the_other_keeps_working(mosquitto, tmp_path):
    table = load_table(DEMO)
    good = table["cameras"][0]
    good.update(source="../tests/data/vtest_cut.mp4", realtime=False)
    bad = {"name": "gate", "source": "rtsp://127.0.0.1:9/stream", "fps": 2,
           "reconnect": {"first_s": 0.1, "max_s": 0.2, "down_after": 2}}
    table["cameras"].append(bad)
    table["spool"] = {**table.get("spool", {}), "confirm_timeout_s": 0}   # no gateway here: the PUBACK frees
    table["mqtt"] = mosquitto.account("campus-01", "box", district="campus").model_dump(mode="json", exclude_none=True)
    config = parse_config(copy.deepcopy(table), str(DEMO), DEMO.parent)

    health: queue.Queue = queue.Queue()
    listener = mosquitto.client()
    listener.on_message = lambda c, u, m: health.put(json.loads(m.payload))
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe("city/campus/campus-01/health", qos=1)
    listener.loop_start()

    box = Box(config, mqtt_url=mosquitto.url, spool_path=tmp_path / "spool.db", health_interval_s=1.0)
    thread = threading.Thread(target=box.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while box.cameras["road"].state != "ended" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    box.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert box.close(drain_timeout_s=10)
    listener.loop_stop()

    reports = []
    while not health.empty():
        reports.append(health.get())
    assert box.cameras["road"].frames == 100
    states = [(r["cameras"]["road"]["state"], r["cameras"]["gate"]["state"]) for r in reports]
    assert ("running", "down") in states or ("ended", "down") in states
    assert states[-1] == ("ended", "ended")         # the box was stopped: both cameras closed


def test_two_cameras_of_one_box_process_frames_at_the_same_time_outside_the_model_call(mosquitto, tmp_path):
    table = load_table(DEMO)
    road = table["cameras"][0]
    road.update(source="../tests/data/vtest_cut.mp4", realtime=False)
    table["cameras"].append({**copy.deepcopy(road), "name": "road-2"})
    table["spool"] = {**table.get("spool", {}), "confirm_timeout_s": 0}   # no gateway here: the PUBACK frees
    table["mqtt"] = mosquitto.account("campus-01", "box", district="campus").model_dump(mode="json", exclude_none=True)
    config = parse_config(copy.deepcopy(table), str(DEMO), DEMO.parent)
    box = Box(config, mqtt_url=mosquitto.url, spool_path=tmp_path / "spool.db", health_interval_s=60.0)

    spans: list[tuple[str, str, float, float]] = []     # camera, "frame" or "model", start, end
    detect = box.detector.detect

    def timed_detect(image):
        started = time.perf_counter()
        try:
            return detect(image)
        finally:
            spans.append((threading.current_thread().name, "model", started, time.perf_counter()))

    box.detector.detect = timed_detect
    for pipeline in box._pipelines.values():
        process = pipeline.process

        def timed_process(frame, process=process):
            started = time.perf_counter()
            try:
                return process(frame)
            finally:
                spans.append((threading.current_thread().name, "frame", started, time.perf_counter()))

        pipeline.process = timed_process
    box.run()
    assert box.close(drain_timeout_s=10)

    def outside_model(camera):
        """The camera's frame time minus its model calls, as (start, end) pieces."""
        pieces = []
        models = sorted((s, e) for c, kind, s, e in spans if c == camera and kind == "model")
        for c, kind, start, end in spans:
            if c != camera or kind != "frame":
                continue
            cursor = start
            for s, e in models:
                if start <= s and e <= end:
                    pieces.append((cursor, s))
                    cursor = e
            pieces.append((cursor, end))
        return pieces

    def busy(camera):
        return [(s, e) for c, kind, s, e in spans if c == camera and kind == "frame"]

    overlap = sum(max(0.0, min(e1, e2) - max(s1, s2))
                  for s1, e1 in outside_model("camera-road") for s2, e2 in busy("camera-road-2"))
    assert box.cameras["road"].frames == box.cameras["road-2"].frames == 100
    assert overlap > 0.05      # seconds in which road worked outside the model while road-2 worked too
