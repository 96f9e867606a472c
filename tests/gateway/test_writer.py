"""The writer process on the real InfluxDB: batches stored in order, reported once stored, never dropped."""

import threading
import time
from collections import Counter

import pytest

from devstack.services import InfluxDB
from gateway.store.influx import InfluxClient
from gateway.store.lineprotocol import Point
from gateway.store.schema import PRECISION
from gateway.store.writer import WriterProcess

from .conftest import Collected, gateway_config, influx_login, wait_for

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000_000


def points(batch: int, size: int) -> list[Point]:
    return [Point("probe", {"batch": str(batch)}, {"n": n, "x": n / 2}, T0 + batch * 1000 + n) for n in range(size)]


def start_writer(server, db: str, tmp_path, acks: Collected, stats: Counter, **changes) -> WriterProcess:
    config = gateway_config(server.url, db, tmp_path / "evidence", influx_login=influx_login(server), batch_size=3,
                            write_max_messages=9, **changes)
    writer = WriterProcess(config, acks, stats)
    writer.start()
    return writer


def test_batches_are_stored_then_reported_in_order(influxdb, influx_db_name, tmp_path):
    with InfluxClient(influxdb.url, influx_db_name, precision=PRECISION, **influxdb.client_login()) as client:
        client.create_database()
        acks, stats = Collected(), Counter()
        writer = start_writer(influxdb, influx_db_name, tmp_path, acks, stats)
        stop = threading.Event()
        try:
            for batch in range(10):
                assert writer.put(points(batch, 3), [f"m{batch}-{n}" for n in range(3)], stop)
            wait_for(lambda: len(acks.items) == 30, 20, 0.05)
            assert acks.items == [f"m{batch}-{n}" for batch in range(10) for n in range(3)]
            assert client.query('SELECT count("n") FROM "probe"')[0]["count"] == 30
            assert 1 <= stats["writes"] <= 10
        finally:
            writer.close(grace_s=5)
        assert not writer.alive


def test_influxdb_away_holds_the_reports_and_nothing_is_lost(tmp_path, influx_db_name):
    with InfluxDB(tmp_path / "own-influxdb") as own, \
            InfluxClient(own.url, influx_db_name, precision=PRECISION, **own.client_login()) as client:
        client.create_database()
        acks, stats = Collected(), Counter()
        writer = start_writer(own, influx_db_name, tmp_path, acks, stats,
                              retry={"initial_s": 0.05, "max_s": 0.2})
        stop = threading.Event()
        try:
            own.stop()
            assert writer.put(points(1, 3), ["a", "b", "c"], stop)
            time.sleep(1.0)
            assert acks.items == [], "reported stored while InfluxDB was down"
            own.start()
            wait_for(lambda: acks.items == ["a", "b", "c"], 30, 0.05)
            assert client.query('SELECT count("n") FROM "probe"')[0]["count"] == 3
        finally:
            writer.close(grace_s=5)


def test_stopping_while_influxdb_is_away_gives_up_after_the_grace_time(tmp_path, influx_db_name):
    with InfluxDB(tmp_path / "own-influxdb") as own:
        acks, stats = Collected(), Counter()
        writer = start_writer(own, influx_db_name, tmp_path, acks, stats, retry={"initial_s": 0.05, "max_s": 0.2})
        own.stop()
        assert writer.put(points(1, 3), ["a", "b", "c"], threading.Event())
        started = time.monotonic()
        writer.close(grace_s=1)
        assert time.monotonic() - started < 8
        assert acks.items == [] and not writer.alive


def test_a_writer_that_died_refuses_batches(influxdb, influx_db_name, tmp_path):
    acks, stats = Collected(), Counter()
    writer = start_writer(influxdb, influx_db_name, tmp_path, acks, stats)
    try:
        writer._process.kill()
        wait_for(lambda: not writer.alive, 10, 0.05)
        assert writer.put(points(1, 3), ["a", "b", "c"], threading.Event()) is False
        assert acks.items == []
    finally:
        writer.close(grace_s=1)
