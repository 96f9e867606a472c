"""How a paho client is set up: the one place, for the box and the gateway alike (addresses: ``common.broker``).

``build_client`` makes an MQTT 5 client with the credentials given (user name
and password, TLS with a CA bundle and an optional client certificate) and
paho's reconnect delays; ``connect`` opens a persistent session (no clean
start, a session expiry, optionally a receive maximum) and starts paho's
network thread. What each side does with its client (the box's will and
publish window, the gateway's manual acknowledgement) stays with that side.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.broker import BrokerAddress, Credentials

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


def build_client(client_id: str, address: BrokerAddress, credentials: Credentials = Credentials(), *,
                 factory: Callable[..., paho.Client] = paho.Client, manual_ack: bool = False) -> paho.Client:
    """An MQTT 5 client (made by ``factory``, paho's own or a subclass) with these credentials, not connected."""
    client = factory(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                     manual_ack=manual_ack)
    if credentials.username:
        client.username_pw_set(credentials.username, credentials.password)
    if address.tls:
        client.tls_set(ca_certs=credentials.ca_file, certfile=credentials.cert_file, keyfile=credentials.key_file,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    return client


def connect(client: paho.Client, address: BrokerAddress, *, keepalive_s: int, session_expiry_s: int,
            receive_maximum: int | None = None) -> None:
    """Open a persistent session (kept ``session_expiry_s`` by the broker) and start paho's network thread."""
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        # Bounds how many unacknowledged messages the broker sends at once.
        properties.ReceiveMaximum = receive_maximum
    client.connect_async(address.host, address.port, keepalive=keepalive_s, clean_start=False,
                         properties=properties)
    client.loop_start()


class SessionState:
    """Whether a link is connected, and it tells the truth: set on an accepted CONNACK only, cleared on a disconnect.

    Both sides' links inherit it; their paho ``on_connect`` starts with ``if not self._accepted(...): return``
    and their ``on_disconnect`` is ``_handle_disconnect``.
    """

    def __init__(self, address: BrokerAddress) -> None:
        self.address = address
        self._connected = threading.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _accepted(self, flags, reason_code) -> bool:
        """Log the broker's answer to CONNECT; False when it refused (then the link is not connected)."""
        if reason_code.is_failure:
            log.warning("mqtt.connect_refused broker=%s:%d reason=%s", self.address.host, self.address.port,
                        reason_code)
            return False
        log.info("mqtt.connected broker=%s:%d session_present=%s", self.address.host, self.address.port,
                 flags.session_present)
        return True

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("mqtt.disconnected reason=%s", reason_code)
        self._connected.clear()
