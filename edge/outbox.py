"""The box's way out: spool -> sender -> MQTT link, started and stopped as one.

Callers hand over messages; each is stored on disk first (with the next
``seq`` when it carries one) and reaches the broker in order, after outages
and restarts too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from contract import Topic
from edge.mqtt import BoxLink, Credentials
from edge.sender import Sender
from edge.spool import DEFAULT_MAX_BYTES, Spool

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, spool_path: Path, mqtt_url: str, district: str, box: str, *,
                 credentials: Credentials = Credentials(), keepalive_s: int = 30, window: int = 100,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 on_message: Callable[[str, bytes], None] | None = None,
                 subscriptions: tuple[str, ...] = ()) -> None:
        self.spool = Spool(spool_path, max_bytes=max_bytes)
        self.sender = Sender(self.spool, window=window)
        self.link = BoxLink(mqtt_url, district, box, credentials=credentials, keepalive_s=keepalive_s,
                            window=window, on_ack=self.sender.acknowledge, on_refused=self.sender.refused,
                            on_message=on_message,
                            subscriptions=subscriptions)
        self.sender.attach(self.link)

    def start(self) -> None:
        self.link.start()
        self.sender.start()

    def put(self, topic: Topic, build: Callable[[int], bytes], *, telemetry: bool = False,
            retain: bool = False) -> int:
        """Store a seq-carrying message built for its seq; returns the seq."""
        seq = self.spool.append(str(topic), build, telemetry=telemetry, retain=retain)
        self.sender.notify()
        return seq

    def put_raw(self, topic: Topic, payload: bytes, *, retain: bool = False, evidence: bool = False) -> None:
        """Store a message without seq (evidence pictures, config acks)."""
        self.spool.append_raw(str(topic), payload, retain=retain, evidence=evidence)
        self.sender.notify()

    def depth(self) -> int:
        return self.spool.depth()

    def oldest_age_s(self) -> float:
        return self.spool.oldest_age_s()

    def close(self, drain_timeout_s: float = 30.0) -> bool:
        """Try to deliver what is spooled, then disconnect; True if nothing is left."""
        delivered = self.link.wait_connected(min(drain_timeout_s, 10)) and self.sender.drain(drain_timeout_s)
        if not delivered:
            log.warning("outbox.not_empty depth=%d (kept on disk for the next start)", self.spool.depth())
        self.sender.stop()
        self.link.stop()
        self.spool.close()
        return delivered
