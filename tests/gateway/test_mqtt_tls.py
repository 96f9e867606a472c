"""The gateway's MQTT link on a broker that requires client certificates, set up from its [mqtt] table."""

import threading
import time
import uuid

import pytest

from devstack.pki import make_pki
from devstack.services import Mosquitto, TlsListener
from gateway.config import MqttSettings
from gateway.transport.incoming import Incoming
from gateway.transport.link import GatewayLink

from .test_mqtt import publish

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    return {**make_pki(folder, "gateway-1"), "folder": folder}


@pytest.fixture
def broker(pki, tmp_path):
    # Insecure on purpose: a broker of the test's own whose TLS listener requires a client certificate from the
    # test's CA, and whose plain listener the test publishes on. What is tested is the link's TLS set-up from
    # its [mqtt] table; the deployment's rules (where gateways log in with passwords) are tested in provision/.
    with Mosquitto(tmp_path / "mosquitto", insecure=True,
                   tls=TlsListener(pki["ca"][0], *pki["server"], require_client_cert=True)) as mosquitto:
        yield mosquitto


def settings(broker, pki, **changes) -> MqttSettings:
    password = pki["folder"] / "password"
    password.write_text("unused-by-this-broker\n")
    return MqttSettings(**{"url": broker.tls_url, "username": "gateway-1", "password_file": password,
                           "ca_file": pki["ca"][0], "cert_file": pki["client"][0], "key_file": pki["client"][1],
                           **changes})


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_the_gateway_receives_with_its_client_certificate(broker, pki, fast):
    prefix = f"city/tls-{uuid.uuid4().hex[:8]}"
    received: list[Incoming] = []
    done = threading.Event()

    def on_messages(messages: list[Incoming]) -> None:
        received.extend(messages)
        if len(received) == 50:
            done.set()

    mqtt = settings(broker, pki)
    link = GatewayLink(mqtt.url, "gw-tls", [f"{prefix}/+/detection"], on_messages,
                       credentials=mqtt.credentials(), fast=fast)
    link.start()
    try:
        assert link.wait_connected(10)
        time.sleep(0.3)
        publish([(f"{prefix}/box-1/detection", f"m{n}".encode()) for n in range(50)], broker)  # plain listener
        assert done.wait(10)
        assert [m.payload for m in received] == [f"m{n}".encode() for n in range(50)]
        link.ack_all(received)
    finally:
        link.stop()


def test_without_a_client_certificate_the_broker_refuses_the_gateway(broker, pki):
    mqtt = settings(broker, pki, cert_file=None, key_file=None)
    link = GatewayLink(mqtt.url, "gw-no-cert", ["city/+/+/detection"], lambda messages: None,
                       credentials=mqtt.credentials())
    link.start()
    try:
        assert not link.wait_connected(3)
    finally:
        link.stop()
