"""Gateway-confirmed delivery on a real box outbox, Mosquitto, gateway and InfluxDB.

The broker's PUBACK only means the broker holds a message, in memory: a
broker killed before the gateway took it loses it. The box therefore keeps
every message until the gateway confirms it stored, and sends it again
otherwise. The control case (a box that frees its spool on the PUBACK, as
boxes did before) shows the fault is real.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from contract import Confirmation, Detection, Kind, Topic, subscription
from devstack.services import Mosquitto

from ..edge.outbox_writer import wait_for_line

pytestmark = pytest.mark.integration

WRITER = Path(__file__).resolve().parents[1] / "edge" / "outbox_writer.py"
DISTRICT = "test-district"


def start_writer(spool: Path, broker: Mosquitto, count: int, *, box: str, rate: float = 200,
                 confirm_timeout: float = 60, resend_after: float = 0.5, drain_timeout: float = 90) -> subprocess.Popen:
    """The writer logs in as box ``box`` of its district, provisioned on the broker's deployment."""
    mqtt_config = spool.with_suffix(".mqtt.toml")
    mqtt_config.write_text("[mqtt]\n" + broker.login(box, "box", district=DISTRICT).toml(broker.url))
    return subprocess.Popen([sys.executable, str(WRITER), str(spool), broker.url, str(count), "--rate", str(rate),
                             "--box", box, "--mqtt-config", str(mqtt_config), "--confirm-timeout", str(confirm_timeout),
                             "--resend-after", str(resend_after), "--drain-timeout", str(drain_timeout)],
                            stdout=subprocess.PIPE, text=True)


def detection(box: str, seq: int) -> bytes:
    return Detection(id=f"{box}-{seq}", box=box, district="old-town", seq=seq, ts=int(time.time() * 1000),
                     camera="north", category="illegal_dumping", label="suitcase", score=0.6,
                     bbox=(0.1, 0.5, 0.2, 0.7), zone="spot", track=1, dwell_s=120.0, lat=48.2, lon=16.37,
                     model="nanodet-g-416", config="abcdef12").encode()


def stored_ids(influx, box: str) -> list[str]:
    return [row["id"] for row in influx.query_all(f'SELECT "id" FROM "detection" WHERE "box" = \'{box}\'')]


def leads(influx) -> list[dict]:
    return influx.query('SELECT * FROM "lead" GROUP BY *')


def crash_the_broker_while_the_gateway_is_away(broker, gateway_process, tmp_path, box: str, count: int,
                                               confirm_timeout: float) -> subprocess.Popen:
    """The gateway's session waits on the broker; the box publishes everything; the broker is SIGKILLed."""
    gateway_process(mqtt_url=broker.url).stop()      # its persistent session now queues for it, in memory
    writer = start_writer(tmp_path / f"{box}.db", broker, count, box=box, confirm_timeout=confirm_timeout)
    wait_for_line(writer, "all put")
    time.sleep(1.0)                                    # the broker acknowledged everything
    broker.kill()
    broker.start()
    gateway_process(mqtt_url=broker.url)
    return writer


def test_a_broker_killed_while_the_gateway_is_away_loses_nothing(gateway_process, influx, wait, tmp_path, deployment):
    count = 150
    with Mosquitto(tmp_path / "mosquitto", deployment=deployment) as broker:
        writer = crash_the_broker_while_the_gateway_is_away(broker, gateway_process, tmp_path, "conf-box", count,
                                                            confirm_timeout=60)
        assert wait_for_line(writer, "drained", 90)   # the spool empties only on the gateway's confirmation
        assert writer.wait(10) == 0
    ids = stored_ids(influx, "conf-box")
    assert sorted(set(ids)) == sorted(f"conf-box-{seq}" for seq in range(1, count + 1))
    assert len(leads(influx)) == 1


def test_control_a_box_that_frees_on_puback_loses_what_the_broker_held(gateway_process, influx, wait, tmp_path,
                                                                     deployment):
    count = 150
    with Mosquitto(tmp_path / "mosquitto", deployment=deployment) as broker:
        writer = crash_the_broker_while_the_gateway_is_away(broker, gateway_process, tmp_path, "puback-box", count,
                                                            confirm_timeout=0)
        assert wait_for_line(writer, "drained", 60)
        writer.wait(10)
        time.sleep(3)
    assert len(set(stored_ids(influx, "puback-box"))) < count


def test_the_gateway_confirms_each_box_retained_after_storing(gateway_process, publish, mosquitto, influx, wait):
    gateway_process()
    messages = [(str(Topic("old-town", f"box-{n}", Kind.DETECTION)), detection(f"box-{n}", n)) for n in range(4)]
    publish(messages)
    wait(lambda: len(influx.query_all('SELECT "id" FROM "detection"')) >= 4)
    time.sleep(0.5)
    received: dict[str, bytes] = {}
    client = mosquitto.client("confirm-reader")
    client.on_message = lambda c, u, m: received.__setitem__(m.topic, bytes(m.payload)) if m.retain else None
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe(subscription(Kind.CONFIRM, "old-town"), qos=1)
    client.loop_start()
    try:
        wait(lambda: len(received) == 4, 10, 0.1)
    finally:
        client.disconnect()
        client.loop_stop()
    for incident in range(4):
        confirmation = Confirmation.decode(received[f"city/old-town/box-{incident}/confirm"])
        assert confirmation.covers(incident) and confirmation.box == f"box-{incident}"


def publish_all(broker: Mosquitto, messages, retain: bool = False) -> None:
    client = broker.client("stale-state")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def box_rows(cli, influx_flags, db) -> dict[str, dict]:
    import json

    result = cli("boxes", *influx_flags(db), "--json")
    assert result.returncode == 0, result.stderr
    return {row["box"]: row for row in json.loads(result.stdout)}


@pytest.mark.parametrize("plain", [False, True], ids=["fast-receive", "plain-paho"])
def test_a_box_that_left_while_the_broker_crashed_is_not_shown_online(gateway_process, influx_flags, influx_db_name,
                                                                      cli, wait, tmp_path, plain, monkeypatch,
                                                                      deployment):
    """The box's "offline" waited on the broker for the gateway and died with the broker: the restarted
    broker holds no session of the gateway's, and nobody is online until heard again."""
    if plain:
        monkeypatch.setenv("STREETWATCH_MQTT_PLAIN", "1")
    with Mosquitto(tmp_path / "mosquitto", deployment=deployment) as broker:
        gateway = gateway_process(mqtt_url=broker.url)
        writer = start_writer(tmp_path / "gone.db", broker, 40, box="gone-box", rate=20, drain_timeout=1)
        wait_for_line(writer, "put 10")
        wait(lambda: box_rows(cli, influx_flags, influx_db_name).get("gone-box", {}).get("online") is True, 20, 0.5)
        gateway.stop()
        writer.wait(30)                  # the box says "offline" and leaves; the broker queues it for the gateway
        broker.kill()
        broker.start()
        gateway = gateway_process(mqtt_url=broker.url)   # its log holds the first run's lines too
        wait(lambda: gateway.log().count("broker.sessions_lost") >= 2, 30, 0.2)
        wait(lambda: box_rows(cli, influx_flags, influx_db_name)["gone-box"]["online"] is False, 20, 0.5)
