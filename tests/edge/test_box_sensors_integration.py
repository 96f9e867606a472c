"""A sensor-only box: readings from a serial line reach the broker as contract messages, with seq and health."""

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge.config import parse_config
from contract import Health, SensorReading
from edge.runtime import Box

pytestmark = pytest.mark.integration


@pytest.fixture
def pty_pair(tmp_path):
    box_end, device_end = tmp_path / "box-tty", tmp_path / "device-tty"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={box_end}", f"pty,raw,echo=0,link={device_end}"],
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (box_end.exists() and device_end.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield box_end, device_end
    socat.terminate()
    socat.wait(5)


def test_dust_readings_and_event_arrive_over_mqtt(mosquitto, pty_pair, tmp_path):
    box_end, device_end = pty_pair
    config = parse_config({
        "version": 1, "box": "fence-01", "district": "harbour",
        "spool": {"confirm_timeout_s": 0},   # no gateway here: the broker's acknowledgement frees the spool
        "mqtt": mosquitto.account("fence-01", "box", district="harbour").model_dump(mode="json", exclude_none=True),
        "sensors": [{"name": "dust", "protocol": "ascii", "port": str(box_end), "publish_s": 0.5,
                     "rules": [{"event": "dust", "value": "pm10", "above": 50}]}],
    }, "test", tmp_path)
    received: queue.Queue = queue.Queue()
    listener = mosquitto.client()
    listener.on_message = lambda c, u, m: received.put((m.topic, m.payload))
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe([("city/harbour/fence-01/sensor", 1), ("city/harbour/fence-01/health", 1)])
    listener.loop_start()

    box = Box(config, mqtt_url=mosquitto.url, spool_path=tmp_path / "spool.db", health_interval_s=1.0)
    thread = threading.Thread(target=box.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
            p.state.value == "open" for p in box.sensors.snapshot().ports.values()):
        time.sleep(0.05)
    device = os.open(device_end, os.O_WRONLY | os.O_NOCTTY)
    for line in (b"pm2_5=8.0,pm10=20.0\n", b"\xff\xfe garbage\n", b"pm2_5=30.5,pm10=80.0\n"):
        os.write(device, line)
        time.sleep(0.7)
    time.sleep(1.5)
    os.close(device)
    box.stop()
    thread.join(15)
    assert box.close(drain_timeout_s=10)
    listener.loop_stop()

    readings, health = [], []
    while not received.empty():
        topic, payload = received.get()
        if topic.endswith("/sensor"):
            readings.append(SensorReading.decode(payload))
        else:
            health.append(Health.decode(payload))
    assert [r.values["pm10"] for r in readings if r.event is None][:1] == [20.0]
    [event] = [r for r in readings if r.event == "dust"]
    assert event.values["pm10"] == 80.0
    seqs = sorted(m.seq for m in [*readings, *health])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))       # one counter across kinds, no gaps
    ports = [p for h in health if h.serial for p in h.serial]
    assert ports and ports[-1].sensors == ["dust"]
    assert max(p.counters.get("non_utf8", 0) + p.counters.get("unparseable", 0) for p in ports) >= 1
