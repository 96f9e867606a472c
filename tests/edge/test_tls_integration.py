"""The box's MQTT link over TLS, with a CA file and a client certificate, on a real Mosquitto.

The broker is the session's secured one: its certificate listener takes the box's client certificate
from the deployment's CA (``auth="cert"``)."""

import threading
import time

import pytest

from contract import Kind, Topic
from edge.mqtt import Credentials
from edge.outbox import Outbox
from edge.sender import DeliveryPolicy
from gateway.provision.pki import Authority

pytestmark = pytest.mark.integration

BOX = "tls-box-1"


@pytest.fixture
def tls_broker(mosquitto):
    return mosquitto


@pytest.fixture
def box_login(mosquitto):
    return mosquitto.login(BOX, "box", district="tls", auth="cert")


def test_a_box_publishes_over_tls_with_its_client_certificate(tls_broker, box_login, tmp_path):
    received = threading.Event()
    watcher = tls_broker.client("tls-watcher")
    watcher.on_message = lambda *args: received.set()
    watcher.connect(tls_broker.host, tls_broker.port)           # the password listener of the same broker
    watcher.subscribe(f"city/tls/{BOX}/detection", qos=1)
    watcher.loop_start()
    time.sleep(0.3)                                              # subscribed
    credentials = Credentials(ca_file=str(box_login.ca_file), cert_file=str(box_login.cert_file),
                              key_file=str(box_login.key_file))
    outbox = Outbox(tmp_path / "spool.db", tls_broker.cert_url, "tls", BOX, credentials=credentials,
                    policy=DeliveryPolicy(confirm_timeout_s=0))   # no gateway here: the PUBACK frees the spool
    outbox.start()
    assert outbox.link.wait_connected(10)
    outbox.put(Topic("tls", BOX, Kind.DETECTION), lambda seq: b'{"seq": %d}' % seq)
    assert received.wait(10)
    assert outbox.close(5)
    watcher.disconnect()
    watcher.loop_stop()


def test_a_broker_signed_by_another_ca_is_not_trusted(tls_broker, box_login, tmp_path):
    Authority.create(tmp_path / "other-ca.pem", tmp_path / "other-ca.key", "other-ca")
    credentials = Credentials(ca_file=str(tmp_path / "other-ca.pem"), cert_file=str(box_login.cert_file),
                              key_file=str(box_login.key_file))
    outbox = Outbox(tmp_path / "spool.db", tls_broker.cert_url, "tls", BOX, credentials=credentials)
    outbox.start()
    assert not outbox.link.wait_connected(3)
    outbox.put(Topic("tls", BOX, Kind.DETECTION), lambda seq: b"{}")
    time.sleep(0.5)
    assert outbox.depth() == 1                                     # kept for when the link is trusted
    assert not outbox.close(1)
