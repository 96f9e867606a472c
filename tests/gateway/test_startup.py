"""`gateway run` started before InfluxDB waits for it with its retry policy, instead of exiting."""

import threading
import time

import pytest

from contract import Detection, Kind, Topic
from devstack.services import InfluxDB, free_port
from gateway.store.influx import InfluxClient
from gateway.store.schema import PRECISION

pytestmark = pytest.mark.integration


def test_a_gateway_started_before_influxdb_waits_for_it_and_then_stores(gateway_process, publish, wait, tmp_path,
                                                                       influx_db_name):
    port = free_port()
    influx = InfluxDB(tmp_path / "late-influxdb", port=port)
    starter = threading.Timer(3.0, influx.start)     # InfluxDB comes up while the gateway waits for it
    starter.start()
    try:
        gateway = gateway_process(influx_url=f"http://127.0.0.1:{port}", influx_server=influx)
        assert gateway.process.poll() is None
        assert "influx.unavailable during=start.create_database" in gateway.log()
        det = Detection(id="late-1", box="box-1", district="old-town", seq=1, ts=int(time.time() * 1000),
                        camera="north", category="illegal_dumping", label="suitcase", score=0.6,
                        bbox=(0.1, 0.5, 0.2, 0.7), zone="spot", track=1, dwell_s=120.0, lat=48.2, lon=16.37,
                        model="nanodet-g-416", config="abcdef12")
        publish([(str(Topic("old-town", "box-1", Kind.DETECTION)), det.encode())])
        with InfluxClient(influx.url, influx_db_name, precision=PRECISION, **influx.client_login()) as client:
            wait(lambda: client.query_all('SELECT "id" FROM "detection"'), 30)
    finally:
        starter.cancel()
        influx.stop()
