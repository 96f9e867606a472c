"""The hub's readers with the port swapped for a scripted one: states, backoff, failures survived."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from edge.sensors import Backoff, PortState, SensorHub, SensorList
from edge.serialport import Line, LineSettings, PortGone, PortUnavailable

PROFILES = Path(__file__).resolve().parents[2] / "firmware_configs" / "profiles"


class ScriptedPorts:
    """A PortOpener: refuses the first ``refusals`` opens, then serves ``lines`` and finally vanishes."""

    def __init__(self, refusals: int, lines: list[bytes]) -> None:
        self.refusals = refusals
        self.lines = deque(lines)
        self.opens = 0
        self.gone = threading.Event()

    def __call__(self, settings: LineSettings) -> ScriptedPorts:
        self.opens += 1
        if self.opens <= self.refusals:
            raise PortUnavailable(settings.port, "no such device")
        self.name = settings.port
        return self

    def read_line(self, timeout_s: float) -> Line | None:
        if self.lines:
            return Line(self.lines.popleft())
        if not self.gone.is_set():
            self.gone.set()
            raise PortGone(self.name, "unplugged")
        time.sleep(timeout_s)
        return None

    def read(self, size: int, timeout_s: float) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def wait_for(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def ascii_sensor(**extra):
    return TypeAdapter(SensorList).validate_python(
        [{"name": "dust-1", "port": "/dev/ttyFAKE0", "protocol": "ascii", "publish_s": 0.01, **extra}])


def test_refused_opens_go_down_then_serve_then_survive_the_loss(caplog):
    ports = ScriptedPorts(refusals=3, lines=[b"pm10=5", b"junk", b"pm10=6"])
    published = []
    hub = SensorHub(ascii_sensor(), PROFILES, lambda *call: published.append(call),
                    backoff=Backoff(0, 0), down_after=3, port_opener=ports, log_interval_s=0)
    with caplog.at_level(logging.INFO, logger="edge.sensors"), hub:
        wait_for(lambda: ports.gone.is_set() and ports.opens >= 5)  # reopened after the loss
    snapshot = hub.snapshot().ports["/dev/ttyFAKE0"]
    logged = [r.getMessage().split(" port=")[0] + " " + " ".join(
        f for f in r.getMessage().split() if f.startswith(("attempt=", "state=")))
        for r in caplog.records if r.getMessage().startswith("sensor.port_")]
    assert logged[:4] == [
        "sensor.port_unavailable attempt=1 state=reconnecting",
        "sensor.port_unavailable attempt=2 state=reconnecting",
        "sensor.port_unavailable attempt=3 state=down",
        "sensor.port_open ",
    ]
    assert "sensor.port_gone " in logged
    assert (snapshot.counters["open_failures"], snapshot.counters["disconnects"]) == (3, 1)
    assert (snapshot.counters["lines"], snapshot.counters["unparseable"]) == (2, 1)
    assert snapshot.state is PortState.STOPPED
    assert published[0][1] == {"pm10": 5.0}


def test_a_failing_publish_callback_is_counted_and_reading_goes_on():
    ports = ScriptedPorts(refusals=0, lines=[b"pm10=5", b"pm10=6"])

    def publish(*call):
        raise OSError("disk full")

    hub = SensorHub(ascii_sensor(), PROFILES, publish, backoff=Backoff(0, 0), port_opener=ports)
    with hub:
        wait_for(lambda: hub.snapshot().ports["/dev/ttyFAKE0"].counters["lines"] == 2)
    assert hub.snapshot().ports["/dev/ttyFAKE0"].counters["publish_errors"] >= 1


def test_a_bug_in_a_reader_is_survived():
    class Exploding(ScriptedPorts):
        def read_line(self, timeout_s):
            if self.opens == 1:
                raise RuntimeError("bug")
            return super().read_line(timeout_s)

    ports = Exploding(refusals=0, lines=[b"pm10=7"])
    published = []
    hub = SensorHub(ascii_sensor(), PROFILES, lambda *call: published.append(call),
                    backoff=Backoff(0, 0), port_opener=ports)
    with hub:
        wait_for(lambda: published)
    counters = hub.snapshot().ports["/dev/ttyFAKE0"].counters
    assert counters["internal_errors"] == 1
    assert published[0][1] == {"pm10": 7.0}


@pytest.mark.parametrize("refusals", [0, 2])
def test_stop_is_prompt(refusals):
    ports = ScriptedPorts(refusals=refusals, lines=[])
    hub = SensorHub(ascii_sensor(), PROFILES, lambda *call: None, backoff=Backoff(0.5, 30), port_opener=ports)
    hub.start()
    time.sleep(0.1)
    started = time.monotonic()
    hub.stop()
    assert time.monotonic() - started < 1.0
    assert hub.snapshot().ports["/dev/ttyFAKE0"].state is PortState.STOPPED
