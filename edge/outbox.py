"""The box's way out: spool -> sender -> MQTT link, started and stopped as one.

Callers hand over messages; each is stored on disk first (with the next
``seq`` when it carries one) and reaches the broker in order, after outages
and restarts too. The outbox listens on the box's ``confirm`` and ``resend``
topics itself: the gateway's confirmations free the spool, its re-send
requests are answered from it (``edge.sender``).

Given the box's signing key, the outbox chains every seq message
(``edge.chain``) and spools a seal of the chain head when one is due, when
messages were sent again, and on start; seals carry no seq and leave on the
broker's acknowledgement, like evidence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from typing import Any

from common.signing import Signer
from contract import Confirmation, ContractError, DroppedSeqs, Kind, ResendRequest, Topic
from edge.chain import DEFAULT_SEAL_AFTER_S, DEFAULT_SEAL_EVERY, ChainWriter
from edge.mqtt import BoxLink, Credentials
from edge.sender import DeliveryPolicy, Sender
from edge.spool import DEFAULT_MAX_BYTES, Spool

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, spool_path: Path, mqtt_url: str, district: str, box: str, *,
                 credentials: Credentials = Credentials(), keepalive_s: int = 30, window: int = 100,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 on_message: Callable[[str, bytes], None] | None = None,
                 subscriptions: tuple[str, ...] = (), policy: DeliveryPolicy = DeliveryPolicy(),
                 page_limit: int | None = None, signer: Signer | None = None,
                 seal_every: int = DEFAULT_SEAL_EVERY, seal_after_s: float = DEFAULT_SEAL_AFTER_S) -> None:
        self.spool = Spool(spool_path, max_bytes=max_bytes, page_limit=page_limit)
        self.chain: ChainWriter | None = None
        if signer is not None:
            head_seq, head = self.spool.chain_head()
            self.chain = ChainWriter(box, district, signer, head_seq=head_seq, head=head, every_n=seal_every,
                                     after_s=seal_after_s)
            self.spool.attach_chain(self.chain)
        self.seal_topic = str(Topic(district, box, Kind.SEAL))
        self.sender = Sender(self.spool, window=window, policy=policy,
                             tick=self._seal_if_due if self.chain is not None else None)
        self.confirm_topic = str(Topic(district, box, Kind.CONFIRM))
        self.resend_topic = str(Topic(district, box, Kind.RESEND))
        self._on_message = on_message
        self.link = BoxLink(mqtt_url, district, box, credentials=credentials, keepalive_s=keepalive_s,
                            window=window, on_ack=self.sender.acknowledge, on_refused=self.sender.refused,
                            on_message=self._handle_message,
                            subscriptions=(self.confirm_topic, self.resend_topic, *subscriptions))
        self.sender.attach(self.link)

    def _handle_message(self, topic: str, payload: bytes) -> None:
        """The gateway's confirmations and re-send requests are the outbox's; the rest goes to the caller."""
        try:
            if topic == self.confirm_topic:
                if payload:   # an empty retained message clears the topic
                    self.sender.confirmed(Confirmation.decode(payload))
                return
            if topic == self.resend_topic:
                self.sender.resend_requested(ResendRequest.decode(payload))
                return
        except ContractError as exc:
            log.warning("delivery.bad_gateway_message topic=%s reason=%s", topic, exc.reason[:300])
            return
        if self._on_message is not None:
            self._on_message(topic, payload)

    def _seal_if_due(self, resent: int) -> None:
        """On the sender's thread: spool a seal of the chain head when one is due (or messages went again)."""
        if resent:
            self.chain.want_seal()
            newest = self.sender.resent_newest
            if newest is not None and newest[0] < self.chain.head_seq:
                self.spool.append_raw(self.seal_topic,
                                      self.chain.seal_of(newest[0], newest[1], int(time.time() * 1000)).encode())
        if self.chain.due():
            self.spool.append_raw(self.seal_topic, self.chain.seal(int(time.time() * 1000)).encode())

    def delivery_health(self) -> dict[str, Any]:
        """The health message's delivery fields: last seq, how the spool is freed, seqs dropped by policy (with
        their chain links)."""
        dropped = [DroppedSeqs(kind=kind, from_seq=first, to_seq=last, first_prev=prev, last_hash=last_hash)
                   for kind, first, last, prev, last_hash in self.spool.dropped_links()
                   if kind in ("telemetry", "keep")]
        return {"last_seq": self.spool.last_seq(), "delivery": self.sender.mode, "dropped_seqs": dropped or None}

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
        if self.chain is not None:   # seal what was sent since the last seal, so the gateway need not wait
            self.chain.want_seal()
            self._seal_if_due(0)
        delivered = self.link.wait_connected(min(drain_timeout_s, 10)) and self.sender.drain(drain_timeout_s)
        if not delivered:
            log.warning("outbox.not_empty depth=%d (kept on disk for the next start)", self.spool.depth())
        self.sender.stop()
        self.link.stop()
        self.spool.close()
        return delivered
