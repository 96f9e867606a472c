"""Store-and-forward on a real Mosquitto: outages and crashes lose no detection."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack.services import Mosquitto

from .outbox_writer import wait_for_line

pytestmark = pytest.mark.integration

WRITER = Path(__file__).with_name("outbox_writer.py")
TOPIC = "city/test-district/writer-box/detection"


class Collector:
    """A persistent-session QoS 1 subscriber that records the seq of every detection."""

    def __init__(self, broker: Mosquitto) -> None:
        self.seqs: list[int] = []
        self._lock = threading.Lock()
        self.client = broker.client("collector")
        self.client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=properties)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.seqs.append(json.loads(message.payload)["seq"])

    def wait_for(self, count: int, timeout_s: float) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(set(self.seqs)) >= count:
                    break
            time.sleep(0.1)
        with self._lock:
            return list(self.seqs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def first_arrivals(seqs: list[int]) -> list[int]:
    """The seqs in arrival order, later repeats (QoS 1 redeliveries) left out."""
    seen, order = set(), []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order


def start_writer(spool: Path, broker: Mosquitto, count: int, rate: float) -> subprocess.Popen:
    """The writer logs in as its box, ``writer-box`` of ``test-district``."""
    mqtt_config = spool.with_suffix(".mqtt.toml")
    mqtt_config.write_text("[mqtt]\n" + broker.login("writer-box", "box", district="test-district").toml(broker.url))
    return subprocess.Popen([sys.executable, str(WRITER), str(spool), broker.url, str(count), "--rate", str(rate),
                             "--mqtt-config", str(mqtt_config)], stdout=subprocess.PIPE, text=True)


@pytest.fixture
def broker(tmp_path, deployment):
    with Mosquitto(tmp_path / "mosquitto", deployment=deployment) as server:
        yield server


def test_a_broker_outage_loses_nothing_and_keeps_order(broker, tmp_path):
    collector = Collector(broker)
    writer = start_writer(tmp_path / "spool.db", broker, 300, rate=100)
    wait_for_line(writer, "put 50")
    broker.stop()
    wait_for_line(writer, "put 150")       # the box keeps spooling while the broker is down
    time.sleep(1.0)
    broker.restart()
    assert wait_for_line(writer, "drained", 60)
    writer.wait(10)
    seqs = collector.wait_for(300, 30)
    collector.close()
    assert first_arrivals(seqs) == list(range(1, 301))


def test_a_killed_box_resends_what_was_not_acknowledged_and_seq_continues(broker, tmp_path):
    collector = Collector(broker)
    spool = tmp_path / "spool.db"
    writer = start_writer(spool, broker, 200, rate=100)
    wait_for_line(writer, "put 80")
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    restarted = start_writer(spool, broker, 200, rate=200)
    first = int(wait_for_line(restarted, "put ").split()[1])
    assert first > 80                       # seq continues from the spool, never restarts at 1
    assert wait_for_line(restarted, "drained", 60)
    restarted.wait(10)
    seqs = collector.wait_for(200, 30)
    collector.close()
    assert sorted(set(seqs)) == list(range(1, 201))
    assert first_arrivals(seqs) == sorted(first_arrivals(seqs))


def test_a_box_that_hears_no_gateway_confirmation_falls_back_to_the_puback_and_says_so(broker, tmp_path):
    collector = Collector(broker)
    mqtt_config = tmp_path / "spool.mqtt.toml"
    mqtt_config.write_text("[mqtt]\n" + broker.login("writer-box", "box", district="test-district").toml(broker.url))
    writer = subprocess.Popen([sys.executable, str(WRITER), str(tmp_path / "spool.db"), broker.url, "50",
                               "--rate", "200", "--confirm-timeout", "2", "--drain-timeout", "30",
                               "--mqtt-config", str(mqtt_config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_line(writer, "drained", 40)          # no gateway confirms: after 2 s the PUBACK frees
    writer.wait(10)
    assert "delivery.mode mode=puback" in writer.stderr.read()
    assert sorted(set(collector.wait_for(50, 10))) == list(range(1, 51))
    collector.close()
