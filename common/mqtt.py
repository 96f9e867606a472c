"""Where the broker is and how a paho client is set up: the one place, for the box and the gateway alike.

``build_client`` makes an MQTT 5 client with the credentials given (user name
and password, TLS with a CA bundle and an optional client certificate) and
paho's reconnect delays; ``connect`` opens a persistent session (no clean
start, a session expiry, optionally a receive maximum) and starts paho's
network thread. What each side does with its client (the box's will and
publish window, the gateway's manual acknowledgement) stays with that side.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, model_validator

from common.validation import Strict

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


class BrokerAddressError(ValueError):
    """A broker URL that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is: ``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Self:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BrokerAddressError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        tls = scheme in ("mqtts", "ssl")
        hostport = rest.rstrip("/")
        host, colon, port_text = hostport.rpartition(":")
        if not colon or "]" in port_text:
            host, port_text = hostport, ""
        host = host.strip("[]")
        if not host:
            raise BrokerAddressError(f"broker URL {url!r} has no host")
        try:
            port = int(port_text) if port_text else (8883 if tls else 1883)
        except ValueError:
            raise BrokerAddressError(f"broker URL {url!r} has a bad port {port_text!r}") from None
        if not 0 < port < 65536:
            raise BrokerAddressError(f"broker URL {url!r} has a port out of range")
        return cls(host, port, tls)


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def read_password(password_env: str | None, password_file: Path | None) -> str | None:
    """The password from an environment variable, or the first line of a file; None when neither is set."""
    if password_env:
        return os.environ.get(password_env)
    if password_file:
        return password_file.read_text().splitlines()[0].strip()
    return None


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


class BrokerSettings(Strict):
    """How to reach and log in to a broker, as a config table."""

    url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL, mqtt://host:port or mqtts://host:port (TLS).")
    username: str | None = Field(None, description="Broker user name.")
    password_env: str | None = Field(None, description="Environment variable holding the password.")
    password_file: Path | None = Field(None, description="File holding the password (first line).")
    ca_file: Path | None = Field(None, description="CA bundle for mqtts:// brokers.")
    cert_file: Path | None = Field(None, description="Client certificate, for brokers that require one.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")

    @model_validator(mode="after")
    def _certificate_with_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    def credentials(self) -> Credentials:
        """The credentials these settings name, the password read now."""
        def text(path: Path | None) -> str | None:
            return str(path) if path else None

        return Credentials(self.username, read_password(self.password_env, self.password_file),
                           text(self.ca_file), text(self.cert_file), text(self.key_file))
