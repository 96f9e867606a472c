"""The box's MQTT link over TLS, with a CA file and a client certificate, on a real Mosquitto."""

import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack.pki import make_pki
from devstack.services import Mosquitto, TlsListener
from contract import Kind, Topic
from edge.mqtt import Credentials
from edge.outbox import Outbox
from edge.sender import DeliveryPolicy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), "box-1")


@pytest.fixture
def tls_broker(pki, tmp_path):
    listener = TlsListener(pki["ca"][0], *pki["server"], require_client_cert=True)
    with Mosquitto(tmp_path / "mosquitto", tls=listener) as broker:
        yield broker


def test_a_box_publishes_over_tls_with_its_client_certificate(tls_broker, pki, tmp_path):
    received = threading.Event()
    watcher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    watcher.on_message = lambda *args: received.set()
    watcher.connect(tls_broker.host, tls_broker.port)           # the plain listener of the same broker
    watcher.subscribe("city/tls/box-1/detection", qos=1)
    watcher.loop_start()
    credentials = Credentials(ca_file=str(pki["ca"][0]), cert_file=str(pki["client"][0]),
                              key_file=str(pki["client"][1]))
    outbox = Outbox(tmp_path / "spool.db", tls_broker.tls_url, "tls", "box-1", credentials=credentials,
                    policy=DeliveryPolicy(confirm_timeout_s=0))   # no gateway here: the PUBACK frees the spool
    outbox.start()
    assert outbox.link.wait_connected(10)
    outbox.put(Topic("tls", "box-1", Kind.DETECTION), lambda seq: b'{"seq": %d}' % seq)
    assert received.wait(10)
    assert outbox.close(5)
    watcher.loop_stop()


def test_a_broker_signed_by_another_ca_is_not_trusted(tls_broker, pki, tmp_path):
    credentials = Credentials(ca_file=str(pki["other_ca"][0]), cert_file=str(pki["client"][0]),
                              key_file=str(pki["client"][1]))
    outbox = Outbox(tmp_path / "spool.db", tls_broker.tls_url, "tls", "box-1", credentials=credentials)
    outbox.start()
    assert not outbox.link.wait_connected(3)
    outbox.put(Topic("tls", "box-1", Kind.DETECTION), lambda seq: b"{}")
    time.sleep(0.5)
    assert outbox.depth() == 1                                     # kept for when the link is trusted
    assert not outbox.close(1)
