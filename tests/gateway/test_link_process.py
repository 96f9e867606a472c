"""The gateway's MQTT link in its own process (``LinkProcess``), on the session's real, secured Mosquitto."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

from common.broker import Credentials
from gateway.transport.incoming import Incoming
from gateway.transport.linkprocess import LinkProcess

from .conftest import Collected
from .test_mqtt import publish

pytestmark = pytest.mark.integration


def start(mosquitto, client_id: str, prefix: str, inbox: Collected, **options) -> LinkProcess:
    link = LinkProcess(mosquitto.url, client_id, [f"{prefix}/+/detection"], inbox,
                       credentials=mosquitto.account(client_id).credentials(), receive_maximum=2000, **options)
    link.start()
    return link


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_messages_arrive_whole_in_order_and_only_acknowledged_ones_are_gone(mosquitto, fast):
    prefix = f"city/lp-{uuid.uuid4().hex[:8]}"
    client_id = f"lp-gateway-{uuid.uuid4().hex[:8]}"
    inbox = Collected()
    link = start(mosquitto, client_id, prefix, inbox, fast=fast)
    try:
        time.sleep(1.0)   # connected and subscribed
        sent = [(f"{prefix}/box-{n % 3}/detection", f"payload-{n}".encode() * 10) for n in range(600)]
        before = time.time()
        publish(sent, mosquitto)
        received = inbox.wait_for(600)
        assert [(m.topic, m.payload) for m in received] == sent
        assert all(m.qos == 1 and not m.retain and before - 1 < m.received <= time.time() for m in received)
        assert len({m.mid for m in received}) == 600
        link.ack_all(received[:400])
    finally:
        link.stop()
    assert not link.failed

    again = Collected()
    link = start(mosquitto, client_id, prefix, again, fast=fast)   # the same persistent session
    try:
        redelivered = again.wait_for(200)
        time.sleep(0.5)
        assert [m.payload for m in again.items] == [payload for _, payload in sent[400:]]
        assert redelivered
        link.ack_all(again.items)
    finally:
        link.stop()


def test_what_the_gateway_publishes_goes_out_after_what_it_acknowledged(mosquitto):
    prefix = f"city/lp-{uuid.uuid4().hex[:8]}"
    inbox = Collected()
    link = start(mosquitto, f"lp-gateway-{uuid.uuid4().hex[:8]}", prefix, inbox)
    seen = Collected()
    watcher = mosquitto.client()
    watcher.on_message = lambda client, userdata, message: seen([Incoming(message.topic, message.payload, 0, 0,
                                                                          time.time(), bool(message.retain))])
    watcher.connect(mosquitto.host, mosquitto.port)
    watcher.subscribe(f"{prefix}/+/confirm", qos=1)
    watcher.loop_start()
    try:
        time.sleep(1.0)
        for n in range(5):
            link.publish(f"{prefix}/box-1/confirm", f"upto {n}".encode(), qos=1, retain=True)
        got = seen.wait_for(5)
        assert [m.payload for m in got] == [f"upto {n}".encode() for n in range(5)]
    finally:
        watcher.disconnect()
        watcher.loop_stop()
        link.stop()


def test_a_link_process_that_dies_is_reported(mosquitto):
    ended = threading.Event()
    link = start(mosquitto, f"lp-gateway-{uuid.uuid4().hex[:8]}", f"city/lp-{uuid.uuid4().hex[:8]}", Collected(),
                 on_ended=ended.set)
    try:
        os.kill(link._process.pid, signal.SIGKILL)
        assert ended.wait(10)
        assert link.failed
        link.ack_all([Incoming("t", b"", 1, 1, 0.0)])   # nothing to send it to: no exception
    finally:
        link.stop()


def test_a_link_that_cannot_be_made_stops_the_start_with_the_reason(tmp_path):
    link = LinkProcess("mqtts://127.0.0.1:1", "lp-bad", ["city/+/+/detection"], Collected(),
                       credentials=Credentials("gw", "secret", ca_file=str(tmp_path / "missing-ca.pem")))
    with pytest.raises(RuntimeError, match="MQTT link not made"):
        link.start()
    assert not link._process.is_alive()
