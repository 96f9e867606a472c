"""A running box takes config changes from its retained config topic and answers on config/ack."""

import copy
import json
import queue
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edge.config import load_table, parse_config
from contract import ConfigAck
from edge.runtime import Box

pytestmark = [pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "firmware_configs" / "demo-campus.toml"


@pytest.fixture
def running_box(mosquitto, tmp_path):
    table = load_table(DEMO)
    table["mqtt"] = mosquitto.account("campus-01", "box", district="campus").model_dump(mode="json", exclude_none=True)
    config = parse_config(copy.deepcopy(table), str(DEMO), DEMO.parent)
    box = Box(config, file_table=table, config_dir=DEMO.parent, mqtt_url=mosquitto.url,
              spool_path=tmp_path / "spool.db", health_interval_s=3600)
    thread = threading.Thread(target=box.run, daemon=True)
    thread.start()
    assert box.outbox.link.wait_connected(10)
    yield box
    box.stop()
    thread.join(30)
    box.close(drain_timeout_s=5)


def operator(mosquitto, acks: queue.Queue) -> paho.Client:
    """An operator's login: writes the boxes' config, reads their acks."""
    client = mosquitto.client("ops-remote-test", "operator")
    client.on_message = lambda c, u, m: acks.put(ConfigAck.decode(m.payload))
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe("city/campus/campus-01/config/ack", qos=1)
    client.loop_start()
    return client


def test_valid_config_applies_live_and_invalid_changes_nothing(running_box, mosquitto):
    acks: queue.Queue = queue.Queue()
    client = operator(mosquitto, acks)
    topic = "city/campus/campus-01/config"
    original_hash = running_box.config_hash

    client.publish(topic, json.dumps({"rules": {"street_vending": {"dwell_s": 45}}}), qos=1, retain=True)
    ack = acks.get(timeout=10)
    assert ack.status == "accepted" and ack.config != original_hash
    assert running_box.config.rules.street_vending.dwell_s == 45
    assert running_box.config_hash == ack.config
    # The camera takes the new settings snapshot at the start of its next frame.
    pipeline = running_box._pipelines["road"]
    deadline = time.monotonic() + 20
    while pipeline.settings is not running_box._settings["road"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_box._pipelines["road"].rules_config.street_vending.dwell_s == 45

    client.publish(topic, json.dumps({"rules": {"street_vending": {"dwell_s": "soon"}}}), qos=1, retain=True)
    ack = acks.get(timeout=10)
    assert ack.status == "rejected" and "rules.street_vending.dwell_s" in ack.reason
    assert ack.config == running_box.config_hash
    assert running_box.config.rules.street_vending.dwell_s == 45

    client.publish(topic, b"", qos=1, retain=True)  # clear the retained config for other tests
    client.disconnect()
    client.loop_stop()
