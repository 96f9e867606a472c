"""Ingest: MQTT -> validate -> dedupe -> lead -> InfluxDB -> then acknowledge.

Per batch, top to bottom:

1. learn case staff's lead changes (``lead_event``), at most every ``status_refresh_s``;
2. check every message against the contract (``pipeline.check``);
3. read back the groups a late detection may join (older than the in-memory horizon);
4. apply the batch to the in-memory state and turn it into points (``pipeline.apply``);
5. write the points, retrying while InfluxDB is away;
6. acknowledge the batch to the broker, and confirm to each box of it what is stored.

Confirmations (``contract.Confirmation``, retained on the box's ``confirm``
topic): the seq state after a batch is what the box may forget once that
batch, and so every batch before it, is stored. Its snapshot for the boxes of
the batch is taken when the batch is handled and published when the writer
reports it stored.

Steps 5 and 6 run in a writer process (``gateway.store.writer``), behind steps
1-4: the ingest's interpreter lock is the gateway's bottleneck, and writing
needs none of its state. Batches that queue up while a write runs go out
together in the next one (up to ``write_max_messages``).

A batch is acknowledged only after InfluxDB took all of its points, so a
gateway killed at any moment loses nothing: the broker delivers the
unacknowledged messages again, and the state rebuilt on start (``restore``)
already holds whatever was written, so a redelivered message changes nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TypeVar

from common.backoff import Waits
from contract import MAX_RESEND_SPAN, Confirmation, Kind, ResendRequest, Topic, seq_runs
from gateway.config import GatewayConfig
from gateway.dedupe.leads import LeadBook
from gateway.dedupe.policies import merge_policies
from gateway.dedupe.routing import Router
from gateway.dedupe.seqgaps import SeqTracker
from gateway.ingest.pipeline import Checked, Pipeline, check
from gateway.ingest.verify import Verifier
from gateway.store import schema
from gateway.store.evidence import EvidenceBudget, EvidenceStore
from gateway.ingest.restore import load_groups, load_windows
from gateway.store.base import LeadStore, StoreError, StoreUnavailable
from gateway.store.lineprotocol import Point
from gateway.store.writer import WriterProcess
from gateway.transport.incoming import READ_BURST, Incoming

log = logging.getLogger(__name__)

INGESTED_KINDS = (Kind.DETECTION, Kind.SENSOR, Kind.HEALTH, Kind.STATUS, Kind.EVIDENCE, Kind.SEAL)
# Case-staff changes are re-read this far back, to survive clock skew between their host and ours
# (re-reading is harmless: statuses only move forward).
EVENT_SLACK_MS = 10 * 60_000
STATUS_ORDER = {"candidate": 0, "open": 1, "claimed": 2, "dispatched": 2, "on_scene": 3, "resolved": 4, "closed": 5}
STOP_GRACE_S = 5.0   # on stop, how long the writer may go on storing what it holds

T = TypeVar("T")


class Stopped(Exception):
    """The gateway was asked to stop while waiting for InfluxDB."""


class Ingest:
    """Owns the in-memory state and runs the batch loop."""

    def __init__(self, config: GatewayConfig, store: LeadStore, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        dedupe = config.dedupe
        self.policies = merge_policies(dedupe)
        self.book = LeadBook(self.policies)
        self.tracker = SeqTracker()
        self.evidence = EvidenceStore(config.evidence_dir, EvidenceBudget.of(config.evidence))
        self.stats: Counter = Counter()
        self.pipeline = Pipeline(self.book, self.tracker, self.evidence, Router(config.teams, config.districts),
                                 self.stats, Verifier(config.verify, clock))
        # Lists of messages as each socket read brought them; bounded so that a slow ingest holds back the broker.
        self.inbox: queue.Queue[list[Incoming]] = queue.Queue(maxsize=max(8, config.batch_size * 20 // READ_BURST))
        self._unbatched: list[Incoming] = []
        self._writer_process: WriterProcess | None = None
        self._stop = threading.Event()
        self._horizon_ms = int(dedupe.horizon_s * 1000)
        self._gap_ms = int(self.policies.largest_gap_s * 1000)   # how far apart a group's entries may lie
        self._loaded_from_ms: int | None = None   # every group with an entry at or after this is in the book
        self._cold_buckets: set[int] = set()       # older merge-gap-wide windows read back for late detections
        self._events_from_ms = 0
        self._events_applied: set[tuple[str, int]] = set()
        self._next_refresh = 0.0
        self._next_prune = 0.0
        # Per batch handed to the writer, in order: (messages, {box: confirmation once it is stored}).
        self._to_confirm: deque[tuple[int, dict[str, Confirmation]]] = deque()
        self._confirmed: dict[str, tuple[int, list]] = {}   # box -> last (upto, ranges) published
        self._asked: dict[tuple[str, int], int] = {}   # (box, gap from_seq) -> when last asked of the box (ms)
        self._next_backfill = 0.0
        self._request: Callable[[list[ResendRequest]], None] = lambda requests: None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ lifecycle

    def offer(self, messages: list[Incoming]) -> None:
        """Called from the transport's thread; blocking here applies backpressure to the broker. Once the gateway
        stops, messages are left unacknowledged for the broker to deliver again."""
        while not self._stop.is_set():
            try:
                self.inbox.put(messages, timeout=0.2)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stop.set()

    def broker_session_lost(self) -> None:
        """Called from the transport when the broker holds no session of ours; noted with the next batch."""
        self.pipeline.session_lost_ms = self.now_ms()

    def wait_for_store(self) -> None:
        """Make the database, waiting (with the retry policy) while InfluxDB cannot be reached.

        Raises ``StoreError`` when it answers with a refusal (credentials, a bad URL path), ``Stopped`` when
        the gateway is asked to stop first.
        """
        self._retrying("start.create_database", self.store.create_database)

    def restore(self) -> None:
        """Rebuild the dedupe and seq state from the store; retries until it answers or the gateway stops."""
        now = self.now_ms()
        since = now - self._horizon_ms
        districts = self.config.serve_districts
        groups = self._retrying("restore.groups", lambda: load_groups(
            self.store, since, None, self.policies, known=lambda _: False, districts=districts))
        for lead in groups:
            self.book.restore(lead, verified=self.evidence.has)
            if lead.status == "closed":   # closed while no gateway ran: its pictures' retention counts from now
                self.evidence.lead_closed(lead.lead_id, now)
        seq_since = now - int(self.config.seq_lookback_s * 1000)
        boxes = self._retrying("restore.boxes", lambda: self.store.box_seqs(seq_since, districts))
        gaps = self._retrying("restore.gaps", lambda: self.store.open_gaps(seq_since, districts))
        for box in boxes:
            self.tracker.restore(box.box, box.district, box.last_seq, [g for g in gaps if g.box == box.box],
                                 box.first_seq)
        self._loaded_from_ms = since
        self._events_from_ms = now
        self._next_prune = self.clock() + self.config.prune_every_s
        leads = sum(1 for lead in groups if lead.status != "candidate")
        log.info("state.restored groups=%d leads=%d detections=%d boxes=%d open_gaps=%d since_ms=%d", len(groups),
                 leads, sum(lead.detections for lead in groups), len(boxes), len(gaps), since)

    def start_writer(self, ack: Callable[[list[Incoming]], None],
                     confirm: Callable[[list[Confirmation]], None] = lambda confirmations: None,
                     request: Callable[[list[ResendRequest]], None] = lambda requests: None) -> None:
        """Start the writer process; ``ack(messages)`` and ``confirm(confirmations)`` are called only once the
        messages are stored."""
        def stored(messages: list[Incoming]) -> None:
            ack(messages)
            self.stats["acked"] += len(messages)
            confirmations = self.stored_confirmations(len(messages))
            if confirmations:
                confirm(confirmations)
                self.stats["confirmations"] += len(confirmations)

        self._request = request
        self._writer_process = WriterProcess(self.config, stored, self.stats)
        self._writer_process.start()

    def close_writer(self) -> None:
        """End the writer process without running (the gateway could not start)."""
        if self._writer_process is not None:
            self._writer_process.close(grace_s=STOP_GRACE_S)

    def run(self) -> bool:
        """Process batches until stopped; False if the writer process ended on its own.

        The writer stores batches while the next ones are processed, in
        order; the state may run a few batches ahead of InfluxDB, which is
        safe: after a crash every unwritten batch is redelivered and the
        rebuilt state holds none of them.
        """
        if self._writer_process is None:
            raise RuntimeError("start_writer() must run before run()")
        try:
            while not self._stop.is_set() and self._writer_process.alive:
                batch = self.next_batch()
                self.ask_for_gaps_if_due()
                if not batch and self.pipeline.session_lost_ms is None and not self.pipeline.verifier.holding():
                    self.prune_if_due()
                    continue
                points = self.handle(batch)
                self._to_confirm.append((len(batch), self.confirmations()))   # before the writer may report it
                if not self._writer_process.put(points, batch, self._stop):
                    break
                self.prune_if_due()
        except Stopped:
            pass
        finally:
            self._writer_process.close(grace_s=STOP_GRACE_S)
        return self._stop.is_set()

    def next_batch(self) -> list[Incoming]:
        """Up to ``batch_size`` messages, waiting at most ``batch_wait_s`` for more once one is there."""
        batch, self._unbatched = self._unbatched, []
        if not batch:
            try:
                batch = self.inbox.get(timeout=0.2)
            except queue.Empty:
                return []
        deadline = time.monotonic() + self.config.batch_wait_s
        while len(batch) < self.config.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch = batch + self.inbox.get(timeout=remaining)
            except queue.Empty:
                break
        if len(batch) > self.config.batch_size:
            batch, self._unbatched = batch[:self.config.batch_size], batch[self.config.batch_size:]
        return batch

    # ------------------------------------------------------------------ one batch

    def handle(self, batch: list[Incoming]) -> list[Point]:
        """Steps 1-4 for one batch: the points that record it."""
        if self._loaded_from_ms is None:
            raise RuntimeError("restore() must run before the first batch")
        self.learn_case_changes()
        now = self.now_ms()
        checked = [check(message, now) for message in batch]
        self.load_history_for(checked)
        return self.pipeline.apply(checked, now)

    def confirmations(self) -> dict[str, Confirmation]:
        """What the boxes of the batch just handled may forget once it is stored: those whose state moved."""
        found: dict[str, Confirmation] = {}
        ts = max(self.now_ms(), 946_684_800_001)
        for box, district in self.pipeline.touched.items():
            state = self.tracker.confirmation(box)
            if state is None or self._confirmed.get(box) == state:
                continue
            self._confirmed[box] = state
            found[box] = Confirmation(box=box, district=district, ts=ts, upto=state[0], ranges=state[1])
        return found

    def stored_confirmations(self, messages: int) -> list[Confirmation]:
        """The confirmations of the batches that make up ``messages`` stored messages, the newest per box."""
        newest: dict[str, Confirmation] = {}
        while self._to_confirm and (messages > 0 or self._to_confirm[0][0] == 0):
            count, confirmations = self._to_confirm.popleft()
            messages -= count
            newest.update(confirmations)
        return list(newest.values())

    def ask_for_gaps_if_due(self) -> None:
        if self.clock() < self._next_backfill:
            return
        self._next_backfill = self.clock() + 10.0
        requests = self.backfill_requests(self.now_ms())
        if requests:
            self._request(requests)
            self.stats["resend_requests"] += len(requests)

    def backfill_requests(self, now_ms: int) -> list[ResendRequest]:
        """Re-send requests for the seq gaps open longer than ``resend_request_after_s``, each at most every
        ``resend_request_every_s``: the box answers from its spool (a box before confirmed delivery ignores it)."""
        after_ms = int(self.config.resend_request_after_s * 1000)
        every_ms = int(self.config.resend_request_every_s * 1000)
        requests: list[ResendRequest] = []
        open_now = set()
        for gap in self.tracker.open_gaps():
            key = (gap.box, gap.from_seq)
            open_now.add(key)
            if now_ms - gap.opened_ms < after_ms or now_ms - self._asked.get(key, -every_ms) < every_ms:
                continue
            self._asked[key] = now_ms
            for first, last in gap.missing_ranges[:16]:
                requests.append(ResendRequest(box=gap.box, district=gap.district, ts=now_ms, from_seq=first,
                                              to_seq=min(last, first + MAX_RESEND_SPAN - 1)))
            log.info("box.backfill_requested box=%s from_seq=%d to_seq=%d missing=%d", gap.box, gap.from_seq,
                     gap.to_seq, gap.missing)
        self._asked = {key: at for key, at in self._asked.items() if key in open_now}
        return requests

    def learn_case_changes(self, force: bool = False) -> None:
        """Apply claims and closes written by case staff since the last look.

        Statuses only move forward (open -> dispatched -> on_scene -> resolved -> closed), so re-reading an
        event, or reading them out of order, never undoes a later change.
        """
        if not force and self.clock() < self._next_refresh:
            return
        started_ms = self.now_ms()
        try:
            events = self.store.events_since(self._events_from_ms - EVENT_SLACK_MS)
        except StoreError as exc:
            log.warning("lead.status_refresh_failed error=%s", exc)
            return
        self._next_refresh = self.clock() + self.config.status_refresh_s
        for seen in events:
            key = (seen.lead_id, seen.time_ns)
            if key in self._events_applied:
                continue
            self._events_applied.add(key)
            self._regroup(seen)
            lead = self.book.get(seen.lead_id)
            to_status = seen.event.to_status
            if lead is None or STATUS_ORDER.get(to_status, 0) <= STATUS_ORDER.get(lead.status, 0):
                continue
            self.book.set_status(seen.lead_id, to_status, claimed_by=seen.event.by if to_status == "claimed" else None,
                                 outcome=seen.event.outcome)
            if to_status == "closed":
                self.evidence.lead_closed(seen.lead_id, seen.event.at_ms)
            log.info("lead.status_learned lead=%s status=%s by=%s", seen.lead_id, to_status, seen.event.by)
        self._events_from_ms = started_ms
        horizon_ns = schema.ms_to_ns(started_ms - 2 * EVENT_SLACK_MS)
        self._events_applied = {key for key in self._events_applied if key[1] >= horizon_ns}

    def _regroup(self, seen) -> None:
        """Case staff's merge or split, applied to the groups in memory (``gateway.desk.casework``)."""
        other = (seen.event.details or {}).get("other")
        if seen.event.event == "merged" and other:
            self.book.merge(seen.lead_id, other)
            log.info("lead.merge_learned lead=%s into=%s by=%s", seen.lead_id, other, seen.event.by)
        elif seen.event.event == "split" and other and seen.event.from_status:
            detection = (seen.event.details or {}).get("detection", "")
            if self.book.split(seen.lead_id, detection, other) is not None:
                log.info("lead.split_learned lead=%s detection=%s new=%s by=%s", seen.lead_id, detection, other,
                         seen.event.by)

    def load_history_for(self, checked: list[Checked]) -> None:
        """Read back the groups that late detections (older than the in-memory horizon) may join.

        All the merge-gap-wide windows the batch needs are read at once (one request per 200 windows, however
        far apart the detections' times lie), never one read per detection; the groups read join the book
        until the next prune, so a batch adds at most three windows per detection to memory.
        """
        needed: set[int] = set()
        for item in checked:
            det = item.detection
            if det is None or det.ts - self._gap_ms >= self._loaded_from_ms:
                continue
            first, last = (det.ts - self._gap_ms) // self._gap_ms, (det.ts + self._gap_ms) // self._gap_ms
            needed.update(b for b in range(first, last + 1)
                          if b not in self._cold_buckets and b * self._gap_ms < self._loaded_from_ms)
        if not needed:
            return
        windows = [(start * self._gap_ms, min((end + 1) * self._gap_ms, self._loaded_from_ms))
                   for start, end in seq_runs(sorted(needed))]
        groups = self._retrying("history.late_windows", lambda: load_windows(
            self.store, windows, self.policies, known=lambda lead_id: self.book.get(lead_id) is not None,
            districts=self.config.serve_districts))
        for lead in groups:
            self.book.restore(lead, verified=self.evidence.has)
        self._cold_buckets.update(needed)
        self.stats["history_reads"] += 1
        log.info("history.loaded windows=%d groups=%d from_ms=%d until_ms=%d", len(windows), len(groups),
                 windows[0][0], windows[-1][1])

    def prune_if_due(self) -> None:
        if self.clock() < self._next_prune:
            return
        self._next_prune = self.clock() + self.config.prune_every_s
        cutoff = self.now_ms() - self._horizon_ms
        dropped = self.book.prune(cutoff)
        self._loaded_from_ms = max(self._loaded_from_ms or cutoff, cutoff)
        self._cold_buckets.clear()
        if dropped:
            log.info("state.pruned groups=%d cutoff_ms=%d kept=%d", dropped, cutoff, len(self.book))

    # ------------------------------------------------------------------ reading, retried

    def _retrying(self, what: str, read: Callable[[], T]) -> T:
        backoff = Waits(self.config.retry.backoff())
        while not self._stop.is_set():
            try:
                return read()
            except StoreUnavailable as exc:
                log.warning("influx.unavailable during=%s retry_in_s=%.1f error=%s", what, backoff.next_s, exc)
            backoff.wait(self._stop)
        raise Stopped(what)


def confirmation_sender(publish: Callable[..., None]) -> Callable[[list[Confirmation]], None]:
    """Publishes each confirmation retained, QoS 1, on its box's ``confirm`` topic (``publish(topic, payload,
    qos=, retain=)``: the transport's)."""
    def send(confirmations: list[Confirmation]) -> None:
        for confirmation in confirmations:
            topic = Topic(confirmation.district, confirmation.box, Kind.CONFIRM)
            publish(str(topic), confirmation.encode(), qos=1, retain=True)
    return send


def resend_request_sender(publish: Callable[..., None]) -> Callable[[list[ResendRequest]], None]:
    """Publishes each request, QoS 1, not retained, on its box's ``resend`` topic."""
    def send(requests: list[ResendRequest]) -> None:
        for request in requests:
            publish(str(Topic(request.district, request.box, Kind.RESEND)), request.encode(), qos=1, retain=False)
    return send

