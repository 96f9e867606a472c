"""Nothing is lost and nothing is doubled when the gateway dies or InfluxDB goes away."""

import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from contract import Detection, Kind, Topic, shared_subscription
from devstack.services import InfluxDB
from gateway.transport.link import GatewayLink

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
INCIDENTS = 60


def detection(incident: int, repeat: int) -> tuple[str, bytes]:
    """Incident ``incident`` seen for the ``repeat``-th time; incidents lie ~110 m apart, boxes take turns."""
    box = f"box-{incident % 4}"
    det = Detection(id=f"i{incident}-r{repeat}", box=box, district="old-town", seq=repeat * 1000 + incident,
                    ts=NOW - 600_000 + repeat * 20_000 + incident, camera="north", category="illegal_dumping",
                    label="suitcase", score=0.6, bbox=(0.1, 0.5, 0.2, 0.7), zone=f"spot-{incident}", track=incident,
                    dwell_s=120.0, lat=48.2 + incident * 0.001, lon=16.37, model="nanodet-g-416", config="abcdef12")
    return str(Topic("old-town", box, Kind.DETECTION)), det.encode()


def stream(repeats: range) -> list[tuple[str, bytes]]:
    return [detection(incident, repeat) for repeat in repeats for incident in range(INCIDENTS)]


def ledger_ids(influx) -> list[str]:
    return [row["id"] for row in influx.query_all('SELECT "id" FROM "detection"')]


def assert_leads(influx, detections_each: int) -> dict[str, dict]:
    leads = {row["lead_id"]: row for row in influx.query('SELECT * FROM "lead" GROUP BY *')}
    assert len(leads) == INCIDENTS
    assert sorted(row["detections"] for row in leads.values()) == [detections_each] * INCIDENTS
    return leads


def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(gateway_process, publish, influx, wait):
    gateway = gateway_process()
    messages = stream(range(5))
    publisher = threading.Thread(target=publish, args=(messages,), kwargs={"pause_s": 0.004})
    publisher.start()
    wait(lambda: len(ledger_ids(influx)) >= 60, 30, 0.05)
    gateway.kill()
    stored_at_kill = len(ledger_ids(influx))
    wait(lambda: process_gone(writer_pid(gateway)), 10, 0.05)   # the writer dies with the gateway
    wait(lambda: process_gone(link_pid(gateway)), 10, 0.05)     # and so does its MQTT link
    publisher.join(60)
    assert stored_at_kill < len(messages), "the stream ended before the kill; the test proves nothing"

    restarted = gateway_process()
    wait(lambda: len(ledger_ids(influx)) >= len(messages), 60)
    time.sleep(0.5)
    ids = ledger_ids(influx)
    assert len(ids) == len(set(ids)) == len(messages)
    leads = assert_leads(influx, 5)
    assert "state.restored" in restarted.log()

    # The same incidents go on: later sightings join the leads that exist.
    publish(stream(range(5, 6)))
    wait(lambda: len(ledger_ids(influx)) >= len(messages) + INCIDENTS)
    assert set(assert_leads(influx, 6)) == set(leads)


@pytest.mark.parametrize(("child", "ended"), [("writer", "gateway.writer_ended"), ("link", "gateway.link_ended")])
def test_a_dead_child_process_stops_the_gateway_and_a_restart_loses_nothing(gateway_process, publish, influx, wait,
                                                                           child, ended):
    """The writer or the MQTT link dies: the gateway exits 1 for its supervisor, and takes the other with it."""
    gateway = gateway_process()
    publish(stream(range(1)))
    wait(lambda: len(ledger_ids(influx)) >= INCIDENTS)
    killed, other = (writer_pid, link_pid) if child == "writer" else (link_pid, writer_pid)
    os.kill(killed(gateway), signal.SIGKILL)
    assert gateway.process.wait(20) == 1
    assert ended in gateway.log()
    assert process_gone(other(gateway))

    publish(stream(range(1, 3)))                   # waits on the broker meanwhile
    restarted = gateway_process()
    wait(lambda: len(ledger_ids(influx)) >= 3 * INCIDENTS, 60)
    time.sleep(0.5)
    ids = ledger_ids(influx)
    assert len(ids) == len(set(ids)) == 3 * INCIDENTS
    assert_leads(influx, 3)
    assert restarted.process.poll() is None


def writer_pid(gateway) -> int:
    return int(re.findall(r"writer\.started pid=(\d+)", gateway.log())[-1])


def link_pid(gateway) -> int:
    return int(re.findall(r"mqtt\.link_process_started pid=(\d+)", gateway.log())[-1])


def process_gone(pid: int) -> bool:
    """True once ``pid`` is no process, or only a zombie waiting for its new parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def take(ingest, count: int) -> list:
    """The next ``count`` messages the ingest has received, batch by batch."""
    messages: list = []
    deadline = time.monotonic() + 10
    while len(messages) < count and time.monotonic() < deadline:
        messages += ingest.next_batch()
    assert len(messages) == count, f"{len(messages)} of {count} messages arrived"
    return messages


def test_written_but_unacknowledged_messages_come_back_and_change_nothing(make_ingest, mosquitto, publish, influx,
                                                                         influx_db_name, wait):
    client_id = f"gw-window-{influx_db_name}"
    # Detections only: other tests leave retained status messages on the shared broker.
    subscriptions = [shared_subscription(influx_db_name, Kind.DETECTION)]

    def connect(ingest) -> GatewayLink:
        link = GatewayLink(mosquitto.url, client_id, subscriptions, ingest.offer,
                           credentials=mosquitto.account(client_id, "gateway").credentials())
        link.start()
        assert link.wait_connected(10)
        time.sleep(0.3)
        return link

    first = make_ingest()
    link = connect(first)
    publish(stream(range(2))[:3])
    batch = take(first, 3)
    assert first.write_until_stored(first.handle(batch))
    link.stop()                                    # dies before acknowledging

    second = make_ingest()
    link = connect(second)
    try:
        redelivered = take(second, 3)
        assert sorted(m.payload for m in redelivered) == sorted(m.payload for m in batch)
        assert second.handle(redelivered) == []
        for message in redelivered:
            link.ack(message)
    finally:
        link.stop()
    assert sorted(ledger_ids(influx)) == sorted(f"i{n}-r0" for n in range(3))


def test_influxdb_away_for_a_while_loses_nothing(tmp_path, gateway_process, publish, wait):
    with InfluxDB(tmp_path / "own-influxdb") as own:
        from gateway.store.influx import InfluxClient

        gateway = gateway_process(influx_server=own, client_id=f"gw-outage-{tmp_path.name}"[:60])
        db = gateway.args[gateway.args.index("--db") + 1]
        with InfluxClient(own.url, db, precision="ns", **own.client_login()) as influx:
            publish(stream(range(1)))
            wait(lambda: len(ledger_ids(influx)) >= INCIDENTS)
            own.stop()
            publish(stream(range(1, 4)))           # acknowledgements are held meanwhile
            wait(lambda: "influx.unavailable" in gateway.log(), 15)
            time.sleep(1.0)
            own.start()
            wait(lambda: len(ledger_ids(influx)) >= 4 * INCIDENTS, 60)
            time.sleep(0.5)
            ids = ledger_ids(influx)
            assert len(ids) == len(set(ids)) == 4 * INCIDENTS
            assert_leads(influx, 4)


def test_gateways_splitting_the_city_by_district_each_keep_whole_incidents(gateway_process, publish, influx, wait):
    # One share group, two gateways, one district each: every incident has all its sightings in one gateway.
    west = gateway_process('serve_districts = ["old-town"]\n', client_id=f"gw-west-{id(influx)}")
    east = gateway_process('serve_districts = ["harbour"]\n', client_id=f"gw-east-{id(influx)}")
    # Odd incidents move to the harbour (INCIDENTS is even, so the index tells the incident's parity).
    messages = [(topic.replace("/old-town/", "/harbour/"), payload.replace(b'"old-town"', b'"harbour"'))
                if index % 2 else (topic, payload)
                for index, (topic, payload) in enumerate(stream(range(4)))]
    publish(messages)
    wait(lambda: len(ledger_ids(influx)) >= len(messages), 60)
    time.sleep(0.5)
    leads = assert_leads(influx, 4)
    by_district = Counter(row["district"] for row in leads.values())
    assert by_district == {"old-town": INCIDENTS // 2, "harbour": INCIDENTS // 2}
    assert "districts=old-town" in west.log() and "districts=harbour" in east.log()
    for gateway, district, other in ((west, "old-town", "harbour"), (east, "harbour", "old-town")):
        assert "lead.opened" in gateway.log() and f"district={district}" in gateway.log()
        assert f"district={other}" not in gateway.log()
