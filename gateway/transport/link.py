"""The gateway's MQTT link: a persistent MQTT 5 session with manual acknowledgement.

Messages are handed on with their MQTT id and acknowledged (PUBACK) only when
the caller says they are safely stored, so a gateway that dies holding
messages gets them again from the broker.

Two receive paths: the fast one (``gateway.transport.fastread``, paho's
receive side replaced, for paho 2.2 only) and plain paho, one message per
callback and one PUBACK per message. The fast path is used when the installed
paho supports it, unless ``fast=False`` or the environment sets
``STREETWATCH_MQTT_PLAIN=1``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable

import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.broker import BrokerAddress, Credentials
from common.mqtt import SessionState, build_client, connect
from gateway.transport import fastread
from gateway.transport.incoming import Incoming, mids_by_qos

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600
PLAIN_ENV = "STREETWATCH_MQTT_PLAIN"


def use_fast_path(fast: bool | None = None) -> bool:
    """Whether the fast receive path is used: asked for (or not forbidden by the environment) and supported."""
    wanted = fast if fast is not None else os.environ.get(PLAIN_ENV, "") not in ("1", "true", "yes")
    if wanted and not fastread.supported():
        log.warning("mqtt.fast_receive_unsupported paho=%s: using plain paho", fastread.PAHO_VERSION)
        return False
    return wanted


class GatewayLink(SessionState):
    """Persistent MQTT 5 session with manual acknowledgement.

    ``on_messages`` gets the messages in the order received, on paho's network thread, as lists: on the
    fast path those of each read from the socket, on the plain path one at a time. Blocking there holds
    back the broker. ``fast`` chooses the receive path (None: fast where supported, see ``use_fast_path``).
    """

    def __init__(self, url: str, client_id: str, subscriptions: list[str],
                 on_messages: Callable[[list[Incoming]], None],
                 *, credentials: Credentials = Credentials(), keepalive_s: int = 30,
                 receive_maximum: int = 1000, fast: bool | None = None,
                 on_session_lost: Callable[[], None] = lambda: None) -> None:
        super().__init__(BrokerAddress.parse(url))
        self.subscriptions = subscriptions
        self.fast = use_fast_path(fast)
        self._on_messages = on_messages
        self._on_session_lost = on_session_lost
        self._receive_maximum = receive_maximum
        factory = functools.partial(fastread.FastClient, on_messages) if self.fast else paho.Client
        self._client = build_client(client_id, self.address, credentials, factory=factory, manual_ack=True)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._keepalive_s = keepalive_s

    def start(self) -> None:
        connect(self._client, self.address, keepalive_s=self._keepalive_s, session_expiry_s=SESSION_EXPIRY_S,
                receive_maximum=self._receive_maximum)

    def ack(self, message: Incoming) -> None:
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def ack_all(self, messages: Iterable[Incoming]) -> None:
        """Acknowledge a batch: on the fast path QoS 1 in one write and QoS 2 one by one, otherwise one by one."""
        self.ack_ids(*mids_by_qos(messages))

    def ack_ids(self, qos1: list[int], qos2: list[int]) -> None:
        """Acknowledge messages by their MQTT ids, as ``ack_all`` does."""
        if self.fast:
            self._client.ack_many(qos1)
        else:
            for mid in qos1:
                self._client.ack(mid, 1)
        for mid in qos2:
            self._client.ack(mid, 2)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish (the gateway's confirmations and re-send requests to boxes). While disconnected, paho keeps
        a QoS 1 message for the next connection of this persistent session."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            log.warning("mqtt.publish_refused topic=%s rc=%s", topic, paho.error_string(info.rc))

    def stop(self) -> None:
        self._connected.clear()  # a disconnection asked for is no news worth a warning
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._accepted(flags, reason_code):
            return
        if not flags.session_present:
            # The broker holds no session of ours (first start, or a broker that lost its state): what it knew
            # of who is connected is gone with it.
            self._on_session_lost()
        options = SubscribeOptions(qos=1)
        client.subscribe([(topic, options) for topic in self.subscriptions])
        self._connected.set()

    def _handle_message(self, client, userdata, message) -> None:
        incoming = Incoming(message.topic, bytes(message.payload), message.mid, message.qos, time.time(),
                            bool(message.retain))
        if self.fast:
            self._client.deliver(incoming)  # handed on with the rest of this read
        else:
            self._on_messages([incoming])
