"""The box's MQTT link: the only edge module that imports paho (the client itself is built by ``common.mqtt``).

The link says whether it is connected, publishes what it is given and reports
each broker acknowledgement (PUBACK) by message id. It keeps no queue of its
own beyond paho's in-flight window: the spool is the queue.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from common.broker import BrokerAddress, Credentials
from common.mqtt import SessionState, build_client, connect
from contract import STATUS_OFFLINE, STATUS_ONLINE, Kind, Topic

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600


__all__ = ["BoxLink", "Credentials"]


class BoxLink(SessionState):
    """Persistent MQTT 5 session for one box, with its ``status`` will."""

    def __init__(self, url: str, district: str, box: str, *, credentials: Credentials = Credentials(),
                 keepalive_s: int = 30, window: int = 100,
                 on_ack: Callable[[int], None] = lambda mid: None,
                 on_refused: Callable[[int], None] = lambda mid: None,
                 on_message: Callable[[str, bytes], None] | None = None,
                 subscriptions: tuple[str, ...] = ()) -> None:
        super().__init__(BrokerAddress.parse(url))
        self.status_topic = str(Topic(district, box, Kind.STATUS))
        self._on_ack = on_ack
        self._on_refused = on_refused
        self.generation = 0  # +1 per successful connect
        self._on_message = on_message
        self._subscriptions = subscriptions
        self._client = build_client(box, self.address, credentials)
        self._client.max_inflight_messages_set(window)
        self._client.max_queued_messages_set(window)
        self._client.will_set(self.status_topic, STATUS_OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish
        self._client.on_socket_open = self._handle_socket_open
        self._client.on_message = self._handle_message
        self._keepalive_s = keepalive_s
        self._own_mids: set[int] = set()

    def start(self) -> None:
        connect(self._client, self.address, keepalive_s=self._keepalive_s, session_expiry_s=SESSION_EXPIRY_S)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """The message id, or None when paho refused the message (offline or window full)."""
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("mqtt.publish_refused topic=%s rc=%s", topic, paho.error_string(info.rc))
            return None
        return info.mid

    def stop(self) -> None:
        """Say offline, then disconnect cleanly (the will covers unclean ends)."""
        if self.connected:
            info = self._client.publish(self.status_topic, STATUS_OFFLINE, qos=1, retain=True)
            info.wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_socket_open(self, client, userdata, sock) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._accepted(flags, reason_code):
            return
        self._own_mids.add(client.publish(self.status_topic, STATUS_ONLINE, qos=1, retain=True).mid)
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        self.generation += 1
        self._connected.set()

    def _handle_message(self, client, userdata, message) -> None:
        if self._on_message is not None:
            try:
                self._on_message(message.topic, bytes(message.payload))
            except Exception:  # a bad handler must not stop the network loop
                log.exception("mqtt.message_handler_failed topic=%s", message.topic)

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if mid in self._own_mids:
            self._own_mids.discard(mid)
            return
        if reason_code.is_failure:
            log.warning("mqtt.publish_refused_by_broker mid=%d reason=%s", mid, reason_code)
            self._on_refused(mid)
            return
        self._on_ack(mid)
