"""The gateway's MQTT link: its own receive path loses, delays and mixes up nothing.

The link's tests run over both receive paths: the fast one (``gateway.transport.fastread``) and plain paho.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import uuid

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.transport import fastread
from gateway.transport.fastread import FastClient, _BufferedSocket
from gateway.transport.incoming import READ_BURST, Incoming
from gateway.transport.link import PLAIN_ENV, GatewayLink, use_fast_path


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def fast(request) -> bool:
    """Which receive path the link uses."""
    return request.param


def test_the_fast_path_is_used_only_on_the_paho_it_was_written_for(monkeypatch):
    assert fastread.supported("2.2.1") and not fastread.supported("2.3.0") and not fastread.supported("3.0")
    monkeypatch.delenv(PLAIN_ENV, raising=False)
    assert use_fast_path() == fastread.supported()
    assert not use_fast_path(False)
    monkeypatch.setattr(fastread, "supported", lambda version=None: False)
    assert not use_fast_path(True)   # falls back to plain paho


def test_the_environment_can_force_plain_paho(monkeypatch):
    monkeypatch.setenv(PLAIN_ENV, "1")
    assert not use_fast_path()


def test_buffered_socket_reads_one_chunk_and_counts_what_it_holds():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    buffered = _BufferedSocket(ours)
    with pytest.raises(BlockingIOError):
        buffered.recv(1)
    theirs.sendall(b"abcdef")
    time.sleep(0.05)
    assert buffered.recv(1) == b"a"
    assert buffered.pending() == 5
    assert buffered.recv(3) == b"bcd"
    assert buffered.recv(10) == b"ef"
    assert buffered.pending() == 0
    theirs.close()
    assert buffered.recv(1) == b""
    assert buffered.fileno() == ours.fileno()
    ours.close()


def publish_packet(topic: str, payload: bytes, mid: int, header: int = 0x32) -> bytes:
    """An MQTT 5 PUBLISH without properties, as the broker sends it."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + mid.to_bytes(2, "big") + b"\x00" + payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([header]) + bytes(encoded) + body


def buffered_with(data: bytes) -> tuple[_BufferedSocket, socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.sendall(data)
    time.sleep(0.05)
    buffered = _BufferedSocket(ours)
    buffered.recv(0)   # fills the buffer
    return buffered, ours, theirs


def test_whole_qos1_publishes_are_cut_from_the_buffer_and_the_rest_is_left_alone():
    big = b"p" * 300                      # a two-byte remaining length
    first, second = publish_packet("city/a/b/detection", b"x", 7), publish_packet("t", big, 8, header=0x3B)
    pingresp, qos0 = b"\xd0\x00", publish_packet("t", b"y", 9, header=0x30)
    buffered, ours, theirs = buffered_with(first + second + pingresp + qos0 + second[:10])
    try:
        assert buffered.take_qos1_publish() == (0x32, first[2:])
        header, body = buffered.take_qos1_publish()   # DUP and RETAIN set: still a QoS 1 PUBLISH
        assert header == 0x3B and body == second[3:] and body.endswith(big)
        assert buffered.take_qos1_publish() is None   # PINGRESP: paho's
        assert buffered.recv(2) == pingresp
        assert buffered.take_qos1_publish() is None   # QoS 0: paho's
        assert buffered.recv(len(qos0)) == qos0
        assert buffered.take_qos1_publish() is None   # only part of it has arrived: paho reads on
        assert buffered.pending() == 10
        assert buffered.recv(10) == second[:10]
    finally:
        ours.close()
        theirs.close()


def test_fill_reads_onto_what_the_buffer_holds_so_a_packet_split_across_reads_is_cut_whole():
    """Over TLS every read brings one record: the rest of a packet comes with the next read."""
    packet = publish_packet("t/a", b"x" * 50, 7)
    buffered, ours, theirs = buffered_with(packet[:20])
    try:
        assert buffered.take_qos1_publish() is None
        assert not buffered.fill()   # nothing more yet
        theirs.sendall(packet[20:] + packet)
        time.sleep(0.05)
        assert buffered.fill()
        assert buffered.take_qos1_publish() == (0x32, packet[2:])
        assert buffered.take_qos1_publish() == (0x32, packet[2:])
        assert buffered.pending() == 0
        theirs.close()
        assert not buffered.fill()   # the end of the stream, kept for paho's read
        assert buffered.recv(1) == b""
    finally:
        ours.close()


def test_a_socket_error_in_fill_is_raised_where_paho_reads():
    class Failing:
        def recv(self, size: int) -> bytes:
            raise ConnectionResetError("reset by peer")

    buffered = _BufferedSocket(Failing())
    assert not buffered.fill()
    with pytest.raises(ConnectionResetError):
        buffered.recv(1)


def test_a_remaining_length_of_more_than_four_bytes_is_left_to_paho():
    buffered, ours, theirs = buffered_with(b"\x32\xff\xff\xff\xff\x01" + b"z" * 10)
    try:
        assert buffered.take_qos1_publish() is None
        assert buffered.pending() == 16
    finally:
        ours.close()
        theirs.close()


@pytest.mark.integration
def test_packets_held_in_the_buffer_do_not_wait_for_the_socket(mosquitto):
    """More packets than one read burst, all in one chunk: the loop must not sleep in select with some left."""
    prefix = f"city/mq-{uuid.uuid4().hex[:8]}"
    received: list[str] = []
    client = mosquitto.client(f"burst-{uuid.uuid4().hex[:8]}", manual_ack=True,
                              factory=functools.partial(FastClient, lambda messages: received.extend(
                                  m.topic for m in messages)))
    properties = Properties(PacketTypes.CONNECT)
    properties.ReceiveMaximum = 2000   # none of them is acknowledged
    client.connect(mosquitto.host, mosquitto.port, properties=properties)
    client.subscribe(f"{prefix}/+/detection", qos=1)
    for _ in range(3):
        client.loop(timeout=0.1)   # CONNACK, SUBACK
    assert client.is_connected()
    count = READ_BURST + 88
    publish([(f"{prefix}/b{n}/detection", b"x") for n in range(count)], mosquitto)
    time.sleep(0.5)  # the broker has sent everything: one recv takes it all
    try:
        for _ in range(4):
            started = time.monotonic()
            client.loop(timeout=5.0)
            assert time.monotonic() - started < 2.0
            if len(received) == count:
                break
        assert received == [f"{prefix}/b{n}/detection" for n in range(count)]
    finally:
        client.disconnect()


@pytest.mark.integration
def test_messages_with_and_without_properties_arrive_once_and_acks_end_redelivery(mosquitto, fast):
    prefix = f"city/mq-{uuid.uuid4().hex[:8]}"
    client_id = f"link-{uuid.uuid4().hex[:8]}"
    expected = [(f"{prefix}/box-{n % 5}/detection", f"payload {n}".encode(), n % 10 == 0) for n in range(1200)]

    first, got = start_link(mosquitto, client_id, prefix, want=len(expected), fast=fast)
    try:
        publish([(topic, payload) for topic, payload, _ in expected], mosquitto,
                with_properties={n for n, item in enumerate(expected) if item[2]})
        assert got.wait(30), f"{len(first.received)} of {len(expected)} arrived"
        # In the order published: paho's own decoding (with properties) and ours hand on in one sequence.
        assert [(m.topic, m.payload) for m in first.received] == [(t, p) for t, p, _ in expected]
        assert all(m.qos == 1 for m in first.received)
        first.link.ack_all(first.received)
        time.sleep(0.5)
    finally:
        first.link.stop()

    again, got = start_link(mosquitto, client_id, prefix, want=1, fast=fast)
    try:
        publish([(f"{prefix}/box-0/detection", b"marker")], mosquitto)
        assert got.wait(10)
        time.sleep(0.3)
        assert [m.payload for m in again.received] == [b"marker"]
    finally:
        again.link.stop()


@pytest.mark.integration
def test_unacknowledged_messages_come_back(mosquitto, fast):
    prefix = f"city/mq-{uuid.uuid4().hex[:8]}"
    client_id = f"link-{uuid.uuid4().hex[:8]}"
    first, got = start_link(mosquitto, client_id, prefix, want=10, fast=fast)
    try:
        publish([(f"{prefix}/box-1/detection", f"m{n}".encode()) for n in range(10)], mosquitto)
        assert got.wait(10)
        first.link.ack_all(first.received[:4])
        time.sleep(0.3)
    finally:
        first.link.stop()
    again, got = start_link(mosquitto, client_id, prefix, want=6, fast=fast)
    try:
        assert got.wait(10)
        assert sorted(m.payload for m in again.received) == sorted(f"m{n}".encode() for n in range(4, 10))
    finally:
        again.link.stop()


@pytest.mark.integration
def test_a_burst_arrives_whole_over_tls(mosquitto, fast):
    """Over TLS the buffer sits above the TLS socket, whose own pending bytes count too."""
    assert mosquitto.url.startswith("mqtts://")
    prefix = f"city/mq-{uuid.uuid4().hex[:8]}"
    state, done = Received(), threading.Event()

    def on_messages(messages: list[Incoming]) -> None:
        state.received.extend(messages)
        if len(state.received) == 1500:
            done.set()

    client_id = f"tls-gateway-{uuid.uuid4().hex[:8]}"
    link = GatewayLink(mosquitto.url, client_id, [f"{prefix}/+/detection"], on_messages,
                       credentials=mosquitto.account(client_id).credentials(), receive_maximum=2000, fast=fast)
    link.start()
    try:
        assert link.wait_connected(10)
        time.sleep(0.3)
        publish([(f"{prefix}/box-1/detection", f"m{n}".encode() * 20) for n in range(1500)], mosquitto)
        assert done.wait(20), f"{len(state.received)} of 1500 arrived"
        assert [m.payload for m in state.received] == [f"m{n}".encode() * 20 for n in range(1500)]
    finally:
        link.stop()


class Received:
    def __init__(self) -> None:
        self.received: list[Incoming] = []
        self.link: GatewayLink


def start_link(mosquitto, client_id: str, prefix: str, want: int, fast: bool) -> tuple[Received, threading.Event]:
    state, done = Received(), threading.Event()

    def on_messages(messages: list[Incoming]) -> None:
        state.received.extend(messages)
        if len(state.received) >= want:
            done.set()

    state.link = GatewayLink(mosquitto.url, client_id, [f"{prefix}/+/detection"], on_messages, receive_maximum=2000,
                             credentials=mosquitto.account(client_id).credentials(), fast=fast)
    assert state.link.fast is fast
    state.link.start()
    assert state.link.wait_connected(10)
    time.sleep(0.3)  # subscribed
    return state, done


def publish(messages: list[tuple[str, bytes]], mosquitto, with_properties: set[int] = frozenset()) -> None:
    client = mosquitto.client(f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(200)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        properties.UserProperty = ("origin", "test")
        infos = [client.publish(topic, payload, qos=1, properties=properties if n in with_properties else None)
                 for n, (topic, payload) in enumerate(messages)]
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()
