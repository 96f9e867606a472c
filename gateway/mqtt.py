"""The gateway's MQTT side: the only gateway module that imports paho.

Messages are handed on with their MQTT id and acknowledged (PUBACK) only when
the caller says they are safely stored, so a gateway that dies holding
messages gets them again from the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.contract import BrokerAddress

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float


class GatewayLink:
    """Persistent MQTT 5 session with manual acknowledgement."""

    def __init__(self, url: str, client_id: str, subscriptions: list[str], on_message: Callable[[Incoming], None],
                 *, username: str | None = None, password: str | None = None, ca_file: str | None = None,
                 keepalive_s: int = 30, receive_maximum: int = 1000) -> None:
        self.address = BrokerAddress.parse(url)
        self.subscriptions = subscriptions
        self._on_message = on_message
        self._connected = threading.Event()
        self._receive_maximum = receive_maximum
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                                   manual_ack=True)
        if username:
            self._client.username_pw_set(username, password)
        if self.address.tls:
            self._client.tls_set(ca_certs=ca_file)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._keepalive_s = keepalive_s

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        # Bounds how many unacknowledged messages the broker sends us at once.
        properties.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(self.address.host, self.address.port, keepalive=self._keepalive_s,
                                   clean_start=False, properties=properties)
        self._client.loop_start()

    def ack(self, message: Incoming) -> None:
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt.connect_refused broker=%s:%d reason=%s", self.address.host, self.address.port, reason_code)
            return
        log.info("mqtt.connected broker=%s:%d session_present=%s", self.address.host, self.address.port,
                 flags.session_present)
        options = SubscribeOptions(qos=1)
        client.subscribe([(topic, options) for topic in self.subscriptions])
        self._connected.set()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("mqtt.disconnected reason=%s", reason_code)
        self._connected.clear()

    def _handle_message(self, client, userdata, message) -> None:
        self._on_message(Incoming(message.topic, bytes(message.payload), message.mid, message.qos, time.time()))
