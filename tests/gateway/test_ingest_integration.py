"""The gateway on real Mosquitto and InfluxDB: detections in, leads out, bad payloads dead-lettered."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contract import Detection, Kind, Topic
from gateway.store.influx import InfluxClient

pytestmark = pytest.mark.integration

T0 = int(time.time() * 1000) - 60_000
BASE = dict(box="box-1", district="old-town", camera="north", category="illegal_dumping", label="suitcase",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="hotspot", track=4, dwell_s=120.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")


def detection(n: int, **changes) -> bytes:
    return Detection(**{**BASE, "id": f"it-{n}", "seq": n, "ts": T0 + n * 1000, **changes}).encode()


def publish_all(broker, messages: list[tuple[str, bytes]]) -> None:
    client = broker.client("test-publisher")
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def gateway_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=60)


def wait_for(predicate, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


@pytest.fixture
def gateway_process(mosquitto, influxdb, influx_db_name, tmp_path):
    client_id = f"gw-{influx_db_name}"
    config = tmp_path / "gateway.toml"
    config.write_text("[mqtt]\n" + mosquitto.login(client_id, "gateway").toml(mosquitto.url) +
                      "[influx]\n" + influxdb.influx_table())
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config), "--mqtt", mosquitto.url,
         "--influx", influxdb.url, "--db", influx_db_name, "--evidence-dir", str(tmp_path / "evidence"),
         "--client-id", client_id],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with InfluxClient(influxdb.url, influx_db_name, precision="ns", **influxdb.client_login()) as client:
        wait_for(lambda: process.poll() is not None or any(
            r.get("name") == influx_db_name for r in client.query("SHOW DATABASES")))
    time.sleep(1.0)  # let the subscription settle before publishing
    yield process
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_detections_become_one_lead_and_garbage_is_dead_lettered(gateway_process, mosquitto, influxdb,
                                                                 influx_db_name, influx_flags):
    topic = str(Topic("old-town", "box-1", Kind.DETECTION))
    other = str(Topic("old-town", "box-2", Kind.DETECTION))
    messages = [
        (topic, detection(1)),
        (topic, detection(2)),
        (topic, detection(2)),                                   # redelivery: same id
        (other, detection(3, box="box-2", camera="east", zone="hotspot-b", lat=48.20858)),  # ~9 m away
        (topic, detection(4)),
        (topic, b"{not json"),
        (topic, detection(5, score=0.5)[:-1] + b',"extra":1}'),
        ("city/old-town/box-1/status", b"maybe"),
    ]
    publish_all(mosquitto, messages)
    with InfluxClient(influxdb.url, influx_db_name, precision="ns", **influxdb.client_login()) as client:
        rejected = wait_for(lambda: len(client.query('SELECT * FROM "rejected"')) >= 3 and
                            client.query('SELECT * FROM "rejected"'))
        leads = wait_for(lambda: (rows := client.query('SELECT * FROM "lead" GROUP BY *')) and
                         rows[0].get("detections") == 4 and rows)
        ledger = client.query('SELECT * FROM "detection"')
        detections = client.query('SELECT count("score") FROM "detection"')
    reasons = " | ".join(r["reason"] for r in rejected)
    assert "Invalid JSON" in reasons and "extra: Extra inputs are not permitted" in reasons
    assert "status must be" in reasons
    assert len(leads) == 1
    lead = leads[0]
    assert lead["status"] == "open" and lead["category"] == "illegal_dumping"
    assert lead["boxes"] == "box-1,box-2" and isinstance(lead["score"], float)
    assert {r["rule"] for r in ledger} == {"opened", "same_zone", "distance"}
    assert detections[0]["count"] == 4

    listed = gateway_cli("leads", "list", *influx_flags(influx_db_name), "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["lead_id"] == lead["lead_id"] and row["detections"] == 4 and row["boxes"] == ["box-1", "box-2"]
    table = gateway_cli("leads", "list", *influx_flags(influx_db_name))
    assert lead["lead_id"] in table.stdout and "1 lead(s)" in table.stdout
