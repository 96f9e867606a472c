"""One bad field never poisons storage: health field names cannot collide or change type, and a field type
conflict InfluxDB reports costs a few writes, not one write per point, and blocks no other point."""

import threading
import time
from collections import Counter

import pytest

from contract import CameraHealth, Health, Kind, SerialPortHealth, Topic
from gateway.config import RetrySettings
from gateway.store.influx import InfluxClient
from gateway.store.lineprotocol import Point
from gateway.store.schema import PRECISION
from gateway.store.writer import InfluxWriter
from gateway.transport.incoming import Incoming

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


def health(seq: int, *, box: str = "box-1", cameras=None, serial=None) -> Incoming:
    message = Health(box=box, district="old-town", seq=seq, ts=NOW - 10_000 + seq, uptime_s=1.0,
                     config="abcdef12", cameras=cameras or {}, serial=serial)
    return Incoming(str(Topic("old-town", box, Kind.HEALTH)), message.encode(), 0, 1, time.time())


def port(sensor: str, counters: dict[str, int], state: str = "open") -> SerialPortHealth:
    return SerialPortHealth(port="/dev/ttyUSB0", state=state, sensors=[sensor], counters=counters)


@pytest.mark.parametrize("first, second", [
    # A serial counter named like the port's own state field.
    ({"serial": [port("s", {"state": 3})]}, {"serial": [port("s", {"timeouts": 1})]}),
    # A camera named like a serial port's prefix, with a counter named like a camera's field.
    ({"cameras": {"serial_s": CameraHealth(state="running", fps=5.0)}}, {"serial": [port("s", {"fps": 7})]}),
    # A sensor named like another sensor's prefix and counter.
    ({"serial": [port("a", {"b_state": 4})]}, {"serial": [port("a_b", {})]}),
])
def test_health_messages_whose_names_would_clash_are_all_stored(make_ingest, influx, first, second):
    ingest = make_ingest()
    for seq, parts in ((1, first), (2, second), (3, second)):
        points = ingest.handle([health(seq, **parts)])
        assert ingest.write_until_stored(points)
    assert influx.query('SELECT * FROM "rejected"') == []
    assert sorted(row["seq"] for row in influx.query('SELECT * FROM "box_health"')) == [1, 2, 3]


class CountingClient:
    """The real InfluxDB client, counting write requests."""

    def __init__(self, client: InfluxClient) -> None:
        self.client = client
        self.database = client.database
        self.writes = 0

    def write(self, points) -> None:
        self.writes += 1
        self.client.write(points)

    def create_database(self) -> None:
        self.client.create_database()


def test_a_field_type_conflict_costs_a_few_writes_and_blocks_nothing_else(influx):
    influx.create_database()
    t0 = (NOW - 60_000) * 1_000_000
    influx.write([Point("box_health", {"box": "old", "district": "x"}, {"weird": 1}, t0 - 1)])   # typed integer
    client = CountingClient(influx)
    writer = InfluxWriter(client, RetrySettings(initial_s=0, max_s=0), threading.Event(), Counter())

    def batch(count: int, every: int, offset: int) -> list[Point]:
        points = []
        for n in range(offset, offset + count):
            if n % every == 0:
                points.append(Point("box_health", {"box": f"bad-{n}", "district": "x"},
                                    {"seq": n, "weird": "text"}, t0 + n))
            else:
                points.append(Point("sensor", {"box": f"box-{n % 7}", "district": "x", "sensor": "s"},
                                    {"seq": n, "level": float(n)}, t0 + n))
        return points

    assert writer.write_until_stored(batch(500, 50, 0))
    assert client.writes <= 5, f"{client.writes} writes for one batch"
    assert len(influx.query_all('SELECT "seq" FROM "sensor"')) == 490
    bad = influx.query_all('SELECT "seq", "weird" FROM "box_health" WHERE "box" =~ /^bad-/')
    assert sorted(row["seq"] for row in bad) == list(range(0, 500, 50))   # stored without the clashing field
    assert all(row["weird"] is None for row in bad)
    letters = influx.query_all('SELECT * FROM "rejected"')
    assert len(letters) == 10 and all("type conflict" in row["reason"] for row in letters)

    client.writes = 0
    assert writer.write_until_stored(batch(100, 20, 1000))   # the conflict is known: one write
    assert client.writes == 1
    assert len(influx.query_all('SELECT "seq" FROM "sensor"')) == 490 + 95
