"""An operator's short MQTT session: read a box's retained config, publish a new one, wait for its answer.

Used by ``gateway config push``; a clean session (nothing is kept at the broker
after it), the same client set-up as everything else (``common.mqtt``).
"""

from __future__ import annotations

import queue
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.broker import BrokerAddress, Credentials
from common.mqtt import build_client


class OperatorLinkError(RuntimeError):
    """The broker refused the operator, or did not answer in time."""


class OperatorLink:
    def __init__(self, url: str, client_id: str, credentials: Credentials) -> None:
        self.address = BrokerAddress.parse(url)
        self._client = build_client(client_id, self.address, credentials)
        self._connack: queue.Queue = queue.Queue()
        self._subacks: queue.Queue = queue.Queue()
        self._messages: queue.Queue = queue.Queue()
        self._pubacks: dict[int, object] = {}
        self._client.on_connect = lambda c, u, f, rc, p: self._connack.put(rc)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subacks.put(rcs)
        self._client.on_publish = lambda c, u, mid, rc, p: self._pubacks.__setitem__(mid, rc)
        self._client.on_message = lambda c, u, m: self._messages.put((m.topic, bytes(m.payload), m.retain))

    def __enter__(self) -> "OperatorLink":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
        self._client.connect_async(self.address.host, self.address.port, clean_start=True, properties=properties)
        self._client.loop_start()
        try:
            reason = self._connack.get(timeout=15)
        except queue.Empty:
            self.close()
            raise OperatorLinkError(f"no answer from the broker at {self.address.host}:{self.address.port}") from None
        if reason.is_failure:
            self.close()
            raise OperatorLinkError(f"the broker refused the login: {reason}")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, *topics: str) -> None:
        self._client.subscribe([(topic, 1) for topic in topics])
        try:
            codes = self._subacks.get(timeout=10)
        except queue.Empty:
            raise OperatorLinkError("the broker did not answer the subscription") from None
        if any(code.is_failure for code in codes):
            raise OperatorLinkError(f"the broker refused a subscription to {', '.join(topics)}")

    def retained(self, topic: str, wait_s: float = 1.0) -> bytes | None:
        """The retained message on a topic this link subscribed to, if one comes within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, payload, retain = self._messages.get(timeout=left)
            except queue.Empty:
                return None
            if got == topic and retain:
                return payload
        return None

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        reason = self._pubacks.get(info.mid)
        if not info.is_published() or reason is None:
            raise OperatorLinkError(f"the broker did not take the message on {topic}")
        if reason.is_failure:
            raise OperatorLinkError(f"the broker refused the message on {topic}: {reason}")

    def next_message(self, topic: str, timeout_s: float) -> bytes | None:
        """The next message on ``topic`` (others are skipped), or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, payload, _ = self._messages.get(timeout=left)
            except queue.Empty:
                return None
            if got == topic:
                return payload
        return None


__all__ = ["OperatorLink", "OperatorLinkError"]
