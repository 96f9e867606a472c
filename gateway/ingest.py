"""Ingest: MQTT -> validate -> dedupe -> points -> InfluxDB -> then acknowledge.

A batch of messages is acknowledged to the broker only after InfluxDB took all
of its points, so a gateway killed at any moment loses nothing: the broker
delivers the unacknowledged messages again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from edge.contract import Detection, Health, Kind, SensorReading
from gateway.config import GatewayConfig
from gateway.evidence import EvidenceStore
from gateway.influx import InfluxClient, InfluxRejected, InfluxUnavailable
from gateway.leads import Lead, LeadBook, MergePolicy
from gateway.lineprotocol import Point, encode_point
from gateway.mqtt import Incoming
from gateway import store
from gateway.validate import Accepted, Rejected, validate

log = logging.getLogger(__name__)

INGESTED_KINDS = (Kind.DETECTION, Kind.SENSOR, Kind.HEALTH, Kind.STATUS, Kind.EVIDENCE)


@dataclass
class Stats:
    counts: Counter = field(default_factory=Counter)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n


@dataclass
class BatchResult:
    points: list[Point]
    changed_leads: list[Lead]


class Ingest:
    """Turns batches of incoming messages into points; owns the dedupe state."""

    def __init__(self, config: GatewayConfig, client: InfluxClient) -> None:
        self.config = config
        self.client = client
        self.book = LeadBook(MergePolicy(**config.dedupe.model_dump()))
        self.evidence = EvidenceStore(config.evidence_dir)
        self.stats = Stats()
        self.inbox: queue.Queue[Incoming] = queue.Queue(maxsize=config.batch_size * 20)
        self._stop = threading.Event()
        self._serial = 0

    # Called from paho's network thread; blocking here applies backpressure to the broker.
    def offer(self, message: Incoming) -> None:
        self.inbox.put(message)

    def stop(self) -> None:
        self._stop.set()

    def next_batch(self) -> list[Incoming]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.batch_wait_s
        while len(batch) < self.config.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def run(self, ack) -> None:
        """Process batches until stopped; ``ack(message)`` is called only after a durable write."""
        while not self._stop.is_set():
            batch = self.next_batch()
            if not batch:
                continue
            result = self.process(batch)
            if not self.write_until_stored(result.points):
                return  # stopped while InfluxDB was down: the broker will redeliver
            for message in batch:
                ack(message)
            self.stats.add("acked", len(batch))

    def process(self, batch: list[Incoming]) -> BatchResult:
        points: list[Point] = []
        changed: dict[str, Lead] = {}
        for message in batch:
            outcome = validate(message.topic, message.payload)
            if isinstance(outcome, Rejected):
                points.append(self._dead_letter(outcome, message))
                continue
            points.extend(self._accept(outcome, message, changed))
        for lead in changed.values():
            points.append(store.lead_point(lead, self.config.team_for(lead.district)))
        return BatchResult(points, list(changed.values()))

    def _accept(self, accepted: Accepted, message: Incoming, changed: dict[str, Lead]) -> list[Point]:
        item = accepted.message
        kind = accepted.topic.kind
        self.stats.add(kind.value)
        if isinstance(item, Detection):
            return self._detection(item, changed)
        if isinstance(item, Health):
            return [store.health_point(item)]
        if isinstance(item, SensorReading):
            return [store.sensor_point(item)]
        if kind is Kind.STATUS:
            return [store.status_point(accepted.topic.box, accepted.topic.district, bool(item),
                                      int(message.received * 1000))]
        if kind is Kind.EVIDENCE:
            sha = self.evidence.save(item)
            log.debug("evidence.stored detection=%s sha256=%s", accepted.topic.detection_id, sha)
            return []
        return []

    def _detection(self, det: Detection, changed: dict[str, Lead]) -> list[Point]:
        merge = self.book.add(det)
        if merge is None:
            self.stats.add("duplicate")
            return []
        points = [store.detection_point(det)]
        lead = merge.lead
        self._serial += 1
        points.append(store.ledger_point(lead, merge.entry, self._serial))
        if lead.is_open_lead:
            changed[lead.lead_id] = lead
        if merge.opened:
            self.stats.add("leads_opened")
            log.info("lead.opened lead=%s category=%s district=%s zone=%s detections=%d", lead.lead_id,
                     lead.category, lead.district, lead.zone, lead.detections)
        return points

    def _dead_letter(self, rejected: Rejected, message: Incoming) -> Point:
        self.stats.add("rejected")
        self._serial += 1
        log.warning("message.rejected topic=%s reason=%s payload=%r", rejected.topic[:120], rejected.reason[:300],
                    rejected.payload[:80])
        return store.rejected_point(rejected, int(message.received * 1000), self._serial)

    def _dead_letter_point(self, point: Point, reason: str) -> Point:
        self._serial += 1
        refused = Rejected(f"(influx)/{point.measurement}", f"InfluxDB refused the point: {reason}",
                           encode_point(point).encode())
        return store.rejected_point(refused, store.now_ms(), self._serial)

    def write_until_stored(self, points: list[Point]) -> bool:
        """Write with bounded backoff per try and no give-up: data is never dropped."""
        if not points:
            return True
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.client.write(points)
                return True
            except InfluxUnavailable as exc:
                log.warning("influx.unavailable retry_in_s=%.1f error=%s", delay, exc)
            except InfluxRejected as exc:
                # Our own encoding or a field-type clash: keep what InfluxDB accepts, dead-letter the rest.
                log.error("influx.rejected_batch error=%s", exc)
                return self._write_one_by_one(points)
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)
        return False

    def _write_one_by_one(self, points: list[Point]) -> bool:
        for point in points:
            while not self._stop.is_set():
                try:
                    self.client.write([point])
                    break
                except InfluxUnavailable:
                    self._stop.wait(1.0)
                except InfluxRejected as exc:
                    self.stats.add("rejected_by_influx")
                    log.error("influx.rejected_point measurement=%s error=%s", point.measurement, exc)
                    point = self._dead_letter_point(point, str(exc))
                    continue
            else:
                return False
        return True
