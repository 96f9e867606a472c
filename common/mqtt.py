"""How a paho client is set up: the one place, for the box and the gateway alike (addresses: ``common.broker``).

``build_client`` makes an MQTT 5 client with the credentials given (user name
and password, TLS with a CA bundle and an optional client certificate) and
paho's reconnect delays; ``connect`` opens a persistent session (no clean
start, a session expiry, optionally a receive maximum) and starts paho's
network thread. What each side does with its client (the box's will and
publish window, the gateway's manual acknowledgement) stays with that side.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.broker import BrokerAddress, Credentials

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
