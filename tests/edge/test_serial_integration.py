"""The sensor readers on real serial lines: socat pty pairs, a pymodbus RTU server on the device end.

Each test links two ptys with socat: the hub opens the ``box`` end, the test
plays the device on the ``device`` end (writing lines, or running a Modbus
RTU server). Killing socat makes the port vanish as an unplugged adapter does.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import reduce
from operator import xor
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from contract import SensorReading
from edge.messages import new_message_id
from edge.sensors import Backoff, PortState, SensorHub, SensorList
from edge.sensors.registers import encode_words
from edge.serialport import Line, LineSettings, PortGone, PortUnavailable, SerialPort

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat (scripts/setup.sh installs it)"),
]

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "firmware_configs" / "profiles"
FAST = Backoff(first_s=0.05, max_s=0.2)
BAUD = 38400


# ------------------------------------------------------------------ helpers


class PtyPair:
    """Two linked ptys made by socat; ``box`` and ``device`` are symlinks to them."""

    def __init__(self, folder: Path) -> None:
        self.box = folder / "box"
        self.device = folder / "device"
        self._process: subprocess.Popen | None = None

    def start(self) -> PtyPair:
        for link in (self.box, self.device):
            link.unlink(missing_ok=True)  # a killed socat leaves its links behind
        self._process = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.box}", f"pty,raw,echo=0,link={self.device}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.box.exists() and self.device.exists(), 5, "socat's ptys")
        return self

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(tmp_path).start()
    yield pair
    pair.kill()


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Published:
    """The publish callback of the box runtime, recording what it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, float], str | None, int]] = []
        self.refused: list[str] = []

    def __call__(self, sensor: str, values: dict[str, float], event: str | None, ts_ms: int) -> None:
        try:  # what the runtime will send must pass the wire contract
            SensorReading(id=new_message_id(), box="box-1", district="old-town", seq=1, ts=ts_ms, sensor=sensor,
                          values=values, event=event, config="0123456789abcdef").encode()
        except ValidationError as exc:
            self.refused.append(str(exc))
            raise
        with self._lock:
            self.calls.append((sensor, values, event, ts_ms))

    def of(self, sensor: str) -> list[tuple[str, dict[str, float], str | None, int]]:
        assert not self.refused, f"the contract refused a reading: {self.refused[0]}"
        with self._lock:
            return [c for c in self.calls if c[0] == sensor]

    def events(self, sensor: str) -> list[str]:
        return [c[2] for c in self.of(sensor) if c[2]]

    def values(self, sensor: str) -> list[dict[str, float]]:
        return [c[1] for c in self.of(sensor)]


def sensors(*tables: dict) -> list:
    return TypeAdapter(SensorList).validate_python(list(tables))


def hub_for(tables: list[dict], published: Published, **options) -> SensorHub:
    return SensorHub(sensors(*tables), PROFILES, published, backoff=FAST, **options)


def port_state(hub: SensorHub, port: Path) -> PortState:
    return hub.snapshot().ports[str(port)].state


def counters(hub: SensorHub, port: Path) -> dict[str, int]:
    return hub.snapshot().ports[str(port)].counters


def nmea(body: str) -> bytes:
    return f"${body}*{reduce(xor, body.encode(), 0):02X}\r\n".encode()


class RtuServer:
    """pymodbus's RTU server on a pty, in a thread with its own event loop."""

    def __init__(self, port: Path, devices: list[SimDevice]) -> None:
        self._loop = asyncio.new_event_loop()
        self._server: ModbusSerialServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(str(port), devices), daemon=True)

    def __enter__(self) -> RtuServer:
        self._thread.start()
        assert self._ready.wait(5), "Modbus server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        self._thread.join(5)

    def _run(self, port: str, devices: list[SimDevice]) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = ModbusSerialServer(devices, framer=FramerType.RTU, port=port, baudrate=BAUD)
            await self._server.serve_forever(background=True)
            self._ready.set()
            await self._server.serving

        self._loop.run_until_complete(serve())
        self._loop.close()


def sim_device(unit: int, holding: list[int] | None = None, inputs: list[int] | None = None) -> SimDevice:
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    return SimDevice(id=unit, simdata=(
        bits, bits,
        [SimData(0, values=holding or [0], datatype=DataType.REGISTERS)],
        [SimData(0, values=inputs or [0], datatype=DataType.REGISTERS)],
    ))


def bin_registers(fill_pct: float, distance_mm: int, battery_v: float, temperature_c: float) -> list[int]:
    temperature = encode_words(round(temperature_c * 10), "int16")[0]
    return [round(fill_pct * 10), distance_mm, round(battery_v * 1000), temperature]


def modbus_sensor(name: str, port: Path, unit: int, profile: str, **extra) -> dict:
    return {"name": name, "port": str(port), "protocol": "modbus", "baudrate": BAUD, "unit": unit,
            "profile": profile, "poll_s": 0.2, "timeout_s": 0.3, "publish_s": 0.5, **extra}


# ------------------------------------------------------------------ the port itself


def test_serial_port_lines_bytes_and_disappearance(pty: PtyPair):
    box = SerialPort.open(LineSettings(str(pty.box), BAUD), max_line_bytes=16)
    device = SerialPort.open(LineSettings(str(pty.device), BAUD))
    try:
        assert box.read_line(0.1) is None
        device.write(b"first\r\nsec")
        assert box.read_line(1).data == b"first"
        assert box.read_line(0.1) is None  # half a line waits for the rest
        device.write(b"ond\n" + b"x" * 20 + b"\n")
        assert box.read_line(1).data == b"second"
        long = box.read_line(1)
        assert long.truncated and long.data == b"x" * 16
        assert box.read_line(1) == Line(b"xxxx", truncated=True)  # the rest of the same long line
        device.write(b"ok\n")
        assert box.read_line(1) == Line(b"ok")
        device.write(b"\x01\x03\x02")
        assert box.read(3, 1) == b"\x01\x03\x02"

        pty.kill()
        with pytest.raises(PortGone):
            box.read_line(1)
        with pytest.raises(PortUnavailable):
            SerialPort.open(LineSettings(str(pty.box)))
    finally:
        box.close()
        device.close()


# ------------------------------------------------------------------ ASCII and NMEA readers


def test_ascii_readings_survive_garbage_and_count_it(pty: PtyPair):
    published = Published()
    hub = hub_for([{"name": "dust-1", "port": str(pty.box), "protocol": "ascii", "baudrate": BAUD,
                    "rename": {"PM2.5": "pm2_5"}, "publish_s": 0.3,
                    "rules": [{"event": "dust", "value": "pm10", "above": 50, "hysteresis": 10}]}], published)
    with hub:
        wait_for(lambda: port_state(hub, pty.box) is PortState.OPEN, 5, "the port to open")
        device = SerialPort.open(LineSettings(str(pty.device), BAUD))
        for chunk in [b"PM2.5=12.5,pm10=20\n", b"\xff\xfe\x00garbage\xc3\n", b"hello world\n",
                      b"\x00" * 2000 + b"\n", b"PM2.5=30,pm10=80\r\n", b"PM2.5=31,pm10=82\n"]:
            device.write(chunk)
        wait_for(lambda: counters(hub, pty.box)["lines"] == 3, 5, "three good lines")
        wait_for(lambda: len(published.of("dust-1")) >= 3, 5, "the latest reading")
        device.close()
        stats = counters(hub, pty.box)

    assert published.values("dust-1")[0] == {"pm2_5": 12.5, "pm10": 20.0}
    assert published.events("dust-1") == ["dust"]
    assert published.of("dust-1")[1][1] == {"pm2_5": 30.0, "pm10": 80.0}
    assert published.values("dust-1")[-1] == {"pm2_5": 31.0, "pm10": 82.0}
    assert stats["non_utf8"] == 1
    assert stats["unparseable"] == 1
    assert stats["overlong"] >= 1
    assert stats["garbage_bytes"] >= 2000
    assert hub.snapshot().ports[str(pty.box)].state is PortState.STOPPED


def test_nmea_gives_the_box_position(pty: PtyPair):
    published = Published()
    hub = hub_for([{"name": "gps", "port": str(pty.box), "protocol": "nmea", "baudrate": BAUD, "publish_s": 0.1}],
                  published)
    with hub:
        wait_for(lambda: port_state(hub, pty.box) is PortState.OPEN, 5, "the port to open")
        device = SerialPort.open(LineSettings(str(pty.device), BAUD))
        device.write(nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")
                     + b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48\r\n"  # bad checksum
                     + b"\xb5\x62\x01\x07garbage from a binary protocol\r\n"
                     + nmea("GPGGA,123519,4812.000,N,01622.500,E,1,09,0.9,190.0,M,46.9,M,,")
                     + nmea("GPRMC,123519,A,4812.000,N,01622.500,E,010.0,084.4,230394,003.1,W"))
        wait_for(lambda: counters(hub, pty.box)["lines"] == 2, 5, "GGA and RMC")
        wait_for(lambda: any("speed_mps" in v for v in published.values("gps")), 5, "the merged view")
        device.close()
        position = hub.position()
        stats = counters(hub, pty.box)

    assert position is not None
    assert (position.lat, position.lon, position.fix, position.satellites) == (48.2, pytest.approx(16.375), 1, 9)
    assert published.values("gps")[-1]["speed_mps"] == pytest.approx(5.144, abs=1e-3)
    assert (stats["ignored"], stats["bad_checksum"], stats["non_utf8"]) == (1, 1, 1)


# ------------------------------------------------------------------ Modbus RTU poller


def test_modbus_devices_on_one_bus_are_polled_and_decoded(pty: PtyPair):
    devices = [
        sim_device(3, holding=bin_registers(95.0, 120, 3.65, -4.5)),
        sim_device(4, inputs=encode_words(71.5, "float32") + encode_words(88.25, "float32")
                   + encode_words(40.0, "float32")),
        sim_device(5, holding=[1, 2]),  # answers, but lacks most registers of its profile
    ]
    published = Published()
    hub = hub_for([
        modbus_sensor("bin-3", pty.box, 3, "ultrasonic-bin",
                      rules=[{"event": "bin_overflow", "value": "fill_pct", "above": 90, "hysteresis": 5}]),
        modbus_sensor("noise-4", pty.box, 4, "noise-meter"),
        modbus_sensor("bin-5", pty.box, 5, "ultrasonic-bin"),
    ], published)
    with RtuServer(pty.device, devices), hub:
        wait_for(lambda: published.events("bin-3") and published.of("noise-4"), 5, "bin and noise readings")
        wait_for(lambda: counters(hub, pty.box)["modbus_exceptions"] >= 2, 5, "unit 5's exception replies")
        snapshot = hub.snapshot()

    first = published.of("bin-3")[0]
    assert first[1] == {"fill_pct": 95.0, "distance_mm": 120.0, "battery_v": 3.65, "temperature_c": -4.5}
    assert first[2] == "bin_overflow"
    assert published.events("bin-3") == ["bin_overflow"]  # once per episode, however often it is polled
    assert published.values("noise-4")[0] == {"laeq_dba": 71.5, "lamax_dba": 88.25, "lamin_dba": 40.0}
    assert published.of("bin-5") == []
    port = snapshot.ports[str(pty.box)]
    assert port.sensors == ("bin-3", "noise-4", "bin-5")
    assert port.counters["polls"] >= 2
    assert snapshot.sensors["bin-3"].active_events == ("bin_overflow",)


def test_modbus_crc_errors_and_silence_are_counted(pty: PtyPair):
    published = Published()
    hub = hub_for([modbus_sensor("bin-3", pty.box, 3, "ultrasonic-bin", poll_s=0.05, timeout_s=0.15)], published)
    device = SerialPort.open(LineSettings(str(pty.device), BAUD))
    try:
        with hub:
            request = device.read(8, 5)
            assert request[:2] == b"\x03\x03"  # unit 3, read holding registers
            reply = b"\x03\x03\x08" + bytes(8)
            device.write(reply + b"\x00\x00")  # a frame of the right length with a wrong CRC
            wait_for(lambda: counters(hub, pty.box)["modbus_bad_frames"] >= 1, 5, "a bad frame")
            wait_for(lambda: counters(hub, pty.box)["modbus_timeouts"] >= 1, 5, "a timeout")
            assert port_state(hub, pty.box) is PortState.OPEN
    finally:
        device.close()
    assert published.of("bin-3") == []


# ------------------------------------------------------------------ vanishing ports


def test_line_reader_survives_an_unplugged_port_and_reconnects(pty: PtyPair):
    published = Published()
    hub = hub_for([{"name": "dust-1", "port": str(pty.box), "protocol": "ascii", "baudrate": BAUD,
                    "publish_s": 0.01}], published, down_after=3)
    with hub:
        wait_for(lambda: port_state(hub, pty.box) is PortState.OPEN, 5, "the port to open")
        device = SerialPort.open(LineSettings(str(pty.device), BAUD))
        device.write(b"pm10=1\n")
        wait_for(lambda: published.of("dust-1"), 5, "a reading before the unplug")
        device.close()

        pty.kill()
        wait_for(lambda: counters(hub, pty.box)["disconnects"] == 1, 5, "the disconnect")
        wait_for(lambda: port_state(hub, pty.box) is PortState.DOWN, 5, "the port to be down")
        assert counters(hub, pty.box)["open_failures"] >= 3
        assert "no such file" in hub.snapshot().ports[str(pty.box)].last_error.lower()

        pty.start()
        wait_for(lambda: port_state(hub, pty.box) is PortState.OPEN, 5, "the port to reopen")
        device = SerialPort.open(LineSettings(str(pty.device), BAUD))
        device.write(b"pm10=2\n")
        wait_for(lambda: {"pm10": 2.0} in published.values("dust-1"), 5, "a reading after the replug")
        device.close()


def test_modbus_poller_survives_an_unplugged_port_and_reconnects(pty: PtyPair):
    published = Published()
    rules = [{"event": "bin_overflow", "value": "fill_pct", "above": 90}]
    hub = hub_for([modbus_sensor("bin-3", pty.box, 3, "ultrasonic-bin", publish_s=0.01, rules=rules)], published)
    with hub:
        with RtuServer(pty.device, [sim_device(3, holding=bin_registers(40, 900, 3.7, 12))]):
            wait_for(lambda: published.of("bin-3"), 5, "a reading before the unplug")
            pty.kill()
            wait_for(lambda: counters(hub, pty.box)["disconnects"] == 1, 5, "the disconnect")
            assert port_state(hub, pty.box) is not PortState.OPEN

        pty.start()
        with RtuServer(pty.device, [sim_device(3, holding=bin_registers(93, 80, 3.6, 12))]):
            wait_for(lambda: published.events("bin-3") == ["bin_overflow"], 5, "readings after the replug")
        assert port_state(hub, pty.box) is PortState.OPEN
