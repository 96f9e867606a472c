"""The broker as provisioned: who may connect, and what each account may publish and read."""

from __future__ import annotations

import queue
import time

import pytest

from common.broker import BrokerSettings

from .conftest import assert_no_secrets, connected, mqtt_settings, probe

pytestmark = pytest.mark.integration


def test_anonymous_and_untrusting_clients_are_refused(deployment, secured, tmp_path):
    anonymous = probe(BrokerSettings(url=secured.url, ca_file=deployment.ca_cert), "anon")
    assert not connected(anonymous)
    anonymous.close()

    wrong_password = tmp_path / "wrong"
    wrong_password.write_text("not-the-password\n")
    impostor = probe(BrokerSettings(url=secured.url, ca_file=deployment.ca_cert, username="box-a",
                                    password_file=wrong_password), "box-a")
    assert not connected(impostor)
    impostor.close()

    # Without the deployment's CA the client does not trust the broker: the system's CAs do not vouch for it.
    settings = mqtt_settings(deployment, "box-a")
    no_ca = probe(settings.model_copy(update={"ca_file": None}), "box-a")
    assert not connected(no_ca, timeout=5)
    no_ca.close()

    # A client certificate from another CA does not open the certificate listener.
    from gateway.provision.pki import Authority
    other = Authority.create(tmp_path / "other.pem", tmp_path / "other.key", "other-ca")
    other.issue("box-b", tmp_path / "forged.pem", tmp_path / "forged.key")
    forged = probe(BrokerSettings(url=secured.cert_url, ca_file=deployment.ca_cert,
                                  cert_file=tmp_path / "forged.pem", key_file=tmp_path / "forged.key"), "box-b")
    assert not connected(forged, timeout=5)
    forged.close()


def test_provisioned_accounts_log_in_by_password_and_by_certificate(deployment, secured):
    for name in ("box-a", "box-b", "gw-1", "ops-1"):
        p = probe(mqtt_settings(deployment, name), name)
        assert connected(p), name
        p.close()


def _granted(suback) -> bool:
    return not suback[0].is_failure


def test_a_box_publishes_only_under_its_own_topics(deployment, secured):
    # Mosquitto 2.0.11 answers a denied QoS 1 publish with a successful PUBACK and drops it, so the test
    # watches what arrives: the gateway sees detections and evidence, the operator every config.
    gateway = probe(mqtt_settings(deployment, "gw-1"), "gw-1")
    assert connected(gateway)
    gateway.client.subscribe([("$share/gateways/city/+/+/detection", 1), ("city/+/+/evidence/+", 1)])
    assert _granted(gateway.subacks.get(timeout=5))
    operator = probe(mqtt_settings(deployment, "ops-1"), "ops-1")
    assert connected(operator)
    operator.client.subscribe("city/+/+/config", qos=1)
    assert _granted(operator.subacks.get(timeout=5))

    box_a = probe(mqtt_settings(deployment, "box-a"), "box-a")
    assert connected(box_a)
    box_a.client.publish("city/campus/box-a/detection", b"own", qos=1)
    assert gateway.messages.get(timeout=5) == ("city/campus/box-a/detection", b"own")
    for topic in ("city/campus/box-b/detection", "city/market/box-a/detection", "city/campus/box-b/config",
                  "city/campus/box-b/evidence/x1", "city/campus/box-a/config"):
        box_a.client.publish(topic, b"forged", qos=1)
        box_a.pubacks.get(timeout=5)
    with pytest.raises(queue.Empty):
        gateway.messages.get(timeout=1)
    with pytest.raises(queue.Empty):
        operator.messages.get(timeout=0.2)

    # Box B (certificate) likewise, under its own name only.
    box_b = probe(mqtt_settings(deployment, "box-b"), "box-b")
    assert connected(box_b)
    box_b.client.publish("city/campus/box-a/detection", b"forged", qos=1)
    box_b.pubacks.get(timeout=5)
    box_b.client.publish("city/campus/box-b/detection", b"b-own", qos=1)
    assert gateway.messages.get(timeout=5) == ("city/campus/box-b/detection", b"b-own")
    with pytest.raises(queue.Empty):
        gateway.messages.get(timeout=1)
    for p in (gateway, operator, box_a, box_b):
        p.close()


def test_a_box_reads_only_its_own_config_and_only_operators_write_config(deployment, secured):
    operator = probe(mqtt_settings(deployment, "ops-1"), "ops-1")
    assert connected(operator)
    operator.client.publish("city/campus/box-b/config", b'{"for": "b"}', qos=1, retain=True)
    assert not operator.pubacks.get(timeout=5).is_failure
    operator.client.publish("city/campus/box-a/config", b'{"for": "a"}', qos=1, retain=True)
    assert not operator.pubacks.get(timeout=5).is_failure
    watcher = probe(mqtt_settings(deployment, "gw-1"), "gw-1")
    assert connected(watcher)
    watcher.client.subscribe("city/+/+/detection", qos=1)
    assert _granted(watcher.subacks.get(timeout=5))
    operator.client.publish("city/campus/box-a/detection", b"forged", qos=1)
    operator.pubacks.get(timeout=5)
    with pytest.raises(queue.Empty):                            # operators write config, nothing else
        watcher.messages.get(timeout=1)
    watcher.close()

    box_a = probe(mqtt_settings(deployment, "box-a"), "box-a")
    assert connected(box_a)
    # Mosquitto 2.0.11 grants the subscription and checks read access per message: nothing of box B's arrives.
    box_a.client.subscribe([("city/campus/box-b/config", 1), ("city/+/+/config", 1), ("city/#", 1)])
    box_a.subacks.get(timeout=5)
    box_a.client.subscribe("city/campus/box-a/config", qos=1)
    assert _granted(box_a.subacks.get(timeout=5))
    received = []
    with pytest.raises(queue.Empty):
        while True:
            received.append(box_a.messages.get(timeout=1))
    assert received and {topic for topic, _ in received} == {"city/campus/box-a/config"}

    gateway = probe(mqtt_settings(deployment, "gw-1"), "gw-1")
    assert connected(gateway)
    gateway.client.publish("city/campus/box-a/config", b'{"from": "gateway"}', qos=1, retain=True)
    gateway.pubacks.get(timeout=5)
    with pytest.raises(queue.Empty):
        box_a.messages.get(timeout=1)

    for topic in ("city/campus/box-a/config", "city/campus/box-b/config"):
        operator.client.publish(topic, b"", qos=1, retain=True)
        operator.pubacks.get(timeout=5)
    for p in (operator, box_a, gateway):
        p.close()


def test_a_box_cannot_take_over_another_box_session_by_client_id(deployment, secured):
    box_c = probe(mqtt_settings(deployment, "box-c"), "box-c")
    assert connected(box_c)
    box_a = probe(mqtt_settings(deployment, "box-a"), "box-c")   # box-a's login, box-c's client id
    assert connected(box_a)
    time.sleep(0.5)
    assert not box_c.disconnected.is_set()   # the broker made box-a's client id "box-a"
    for p in (box_a, box_c):
        p.close()


@pytest.mark.parametrize("fast", [True, False])
def test_the_gateway_ingests_with_its_provisioned_login(deployment, secured, tmp_path, fast):
    """The gateway's own link, its [mqtt] table as provisioned (password from a file), its shared subscriptions."""
    import tomllib

    from gateway.cli import subscriptions
    from gateway.config import GatewayConfig
    from gateway.transport.link import GatewayLink

    table = tomllib.loads((deployment.bundle("gw-1") / "mqtt.toml").read_text())["mqtt"]
    config = GatewayConfig.model_validate({"mqtt": table})
    received: queue.Queue = queue.Queue()
    link = GatewayLink(config.mqtt.url, config.mqtt.client_id, subscriptions(config),
                       lambda messages: [received.put(m) for m in messages],
                       credentials=config.mqtt.credentials(), fast=fast)
    link.start()
    try:
        assert link.wait_connected(10)
        time.sleep(0.3)                              # its subscriptions are sent on connect
        box_c = probe(mqtt_settings(deployment, "box-c"), "box-c")
        assert connected(box_c)
        for kind in ("detection", "health", "evidence/e1"):
            box_c.client.publish(f"city/market/box-c/{kind}", kind.encode(), qos=1)
        got = {received.get(timeout=5).topic for _ in range(3)}
        assert got == {"city/market/box-c/detection", "city/market/box-c/health", "city/market/box-c/evidence/e1"}
        box_c.close()
    finally:
        link.stop()


def test_the_broker_log_holds_no_password_or_key(deployment, secured):
    assert_no_secrets(deployment, secured.log_file.read_text(), secured.console_log.read_text())


def test_the_gateway_sends_confirmations_and_resend_requests_that_only_their_box_reads(deployment, secured):
    box_a = probe(mqtt_settings(deployment, "box-a"), "box-a")
    assert connected(box_a)
    box_a.client.subscribe([("city/campus/box-a/confirm", 1), ("city/campus/box-a/resend", 1),
                            ("city/market/box-c/confirm", 1)])
    box_a.subacks.get(timeout=5)
    gateway = probe(mqtt_settings(deployment, "gw-1"), "gw-1")
    assert connected(gateway)
    for topic in ("city/campus/box-a/confirm", "city/campus/box-a/resend", "city/market/box-c/confirm"):
        gateway.client.publish(topic, b"from the gateway", qos=1)
        gateway.pubacks.get(timeout=5)
    box_c = probe(mqtt_settings(deployment, "box-c"), "box-c")     # a box cannot confirm for another
    assert connected(box_c)
    box_c.client.publish("city/campus/box-a/confirm", b"forged", qos=1)
    box_c.pubacks.get(timeout=5)
    received = []
    with pytest.raises(queue.Empty):
        while True:
            received.append(box_a.messages.get(timeout=1))
    assert sorted(received) == [("city/campus/box-a/confirm", b"from the gateway"),
                                ("city/campus/box-a/resend", b"from the gateway")]
    for p in (box_a, gateway, box_c):
        p.close()
