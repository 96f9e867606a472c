"""One batch of messages becomes the points that record it.

    check:  topic + payload -> typed message (or a dead letter with its reason)
    apply:  verify (chains and seals, ``gateway.ingest.verify``) -> seq gaps -> dedupe -> lead (team, best
            picture) -> points

``check`` is pure. ``apply`` changes the in-memory state (lead book, seq
tracker) and stores evidence files, but talks to nobody: reading history
before and writing points after is ``gateway.ingest``'s job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from typing import NamedTuple

from contract import ContractError, Detection, Health, Kind, SensorReading, Topic
from gateway.dedupe.leads import Lead, LeadBook
from gateway.dedupe.routing import Router
from gateway.dedupe.seqgaps import Gap, SeqTracker
from gateway.ingest.validate import Accepted, Rejected, validate
from gateway.ingest.verify import Verifier
from gateway.store import schema
from gateway.store.evidence import EvidenceRefused, EvidenceStore, PendingEvidence
from gateway.store.lineprotocol import LineProtocolError, Point, encoded
from gateway.transport.incoming import Incoming

log = logging.getLogger(__name__)

LOG_PAYLOAD_BYTES = 80
SeqMessage = Detection | SensorReading | Health


class Checked(NamedTuple):
    """A message with its verdict and, if accepted, its own point, encoded here, so known to be storable.

    A detection has none yet: its point carries its ledger entry, so ``apply``
    makes it. The contract admits only what line protocol can carry in it
    (names, labels without control characters or backslashes, finite numbers,
    counters below 2^63).
    """

    message: Incoming
    outcome: Accepted | Rejected
    point: Point | None = None
    verify: str | None = None   # verified / unverified / failed, for seq messages once past ``Verifier``

    @property
    def detection(self) -> Detection | None:
        if isinstance(self.outcome, Accepted) and isinstance(self.outcome.message, Detection):
            return self.outcome.message
        return None


def check(message: Incoming, now_ms: int) -> Checked:
    outcome = validate(message.topic, message.payload, now_ms)
    if isinstance(outcome, Rejected):
        return Checked(message, outcome)
    point = _own_point(outcome, message)
    if point is None:
        return Checked(message, outcome)
    try:
        line_made = encoded(point)
    except LineProtocolError as exc:
        return Checked(message, Rejected(message.topic, f"cannot be stored: {exc}", message.payload))
    return Checked(message, outcome, line_made)


def _own_point(accepted: Accepted, message: Incoming) -> Point | None:
    item = accepted.message
    if isinstance(item, SensorReading):
        return schema.sensor_point(item)
    if isinstance(item, Health):
        return schema.health_point(item)
    if accepted.topic.kind is Kind.STATUS:
        if message.retain and item:
            # A retained "online" replayed on subscribing says only that the box was online when it was
            # retained: after a broker restart it may be a box long gone. Live statuses (and the box's will) say.
            return None
        return schema.status_point(accepted.topic.box, accepted.topic.district, bool(item),
                                  int(message.received * 1000))
    return None


class Pipeline:
    def __init__(self, book: LeadBook, tracker: SeqTracker, evidence: EvidenceStore, router: Router,
                 stats: Counter, verifier: Verifier | None = None) -> None:
        self.verifier = verifier or Verifier.permissive()
        self.book = book
        self.tracker = tracker
        self.evidence = evidence
        self.router = router
        self.stats = stats
        self.pending_evidence = PendingEvidence()
        self._serial = random.randrange(schema.NS_PER_MS)
        self.touched: dict[str, str] = {}   # box -> district, of the boxes whose seqs the last batch moved
        self.session_lost_ms: int | None = None   # the broker lost its sessions (set from the transport's thread)
        self._offline_until_heard: set[str] = set()   # boxes marked offline then, until a message shows them back
        self.evidence_refused: Counter = Counter()   # box -> pictures refused for the budget, since start
        self._next_expiry_ms = 0

    def apply(self, batch: list[Checked], now_ms: int) -> list[Point]:
        points: list[Point] = []
        leads: dict[str, Lead] = {}
        opened: set[str] = set()
        gaps: dict[int, Gap] = {}
        evidence_boxes: dict[str, str] = {}
        self.touched = {}
        batch = self.verifier.admit(batch, now_ms)
        for box in self.verifier.broke:   # a box's chain broke: its leads say so
            for lead in self.book.leads():
                if box in lead.boxes:
                    lead.chain_broken.append(box)
                    leads[lead.lead_id] = lead
        points.extend(self._sessions_lost())
        for item in batch:
            if isinstance(item.outcome, Rejected):
                points.append(self._dead_letter(item.outcome, item.message))
                refused = _refused_seq(item.message)
                if refused is not None:   # kept as a dead letter: the box need not send it again
                    box, district, seq = refused
                    self.touched[box] = district
                    for gap in self.tracker.observe(box, district, seq, now_ms):
                        gaps[id(gap)] = gap
                continue
            message = item.outcome.message
            self.stats[item.outcome.topic.kind.value] += 1
            if self._offline_until_heard and item.outcome.topic.box in self._offline_until_heard:
                points.extend(self._heard_again(item))
            if isinstance(message, SeqMessage):
                self.touched[message.box] = message.district
                for gap in self.tracker.observe(message.box, message.district, message.seq, now_ms):
                    gaps[id(gap)] = gap
                if isinstance(message, Health):
                    for gap in self._health_seqs(message, now_ms):
                        gaps[id(gap)] = gap
            if isinstance(message, Detection):
                points.extend(self._detection(item, message, leads, opened))
            elif item.outcome.topic.kind is Kind.EVIDENCE:
                points.extend(self._evidence(item, leads, now_ms))
                evidence_boxes[item.outcome.topic.box] = item.outcome.topic.district
            elif item.point is not None:
                points.append(item.point)
        points.extend(self._lead_points(leads, opened))
        _log_opened([leads[lead_id] for lead_id in sorted(opened) if lead_id in leads])
        points.extend(self._gap_points(gaps.values()))
        points.extend(self._expired_evidence(now_ms))
        points.extend(self._evidence_budget_points(evidence_boxes, now_ms))
        points.extend(self.verifier.points(now_ms))
        return points

    def _sessions_lost(self) -> list[Point]:
        """The broker lost its sessions: every box counts as offline until it connects again and says so."""
        lost, self.session_lost_ms = self.session_lost_ms, None
        if lost is None:
            return []
        log.warning("broker.sessions_lost boxes=%d: each is offline until it is heard again", len(self.tracker.boxes))
        self._offline_until_heard = set(self.tracker.boxes)
        return [schema.status_point(state.box, state.district, False, lost) for state in self.tracker.boxes.values()]

    def _heard_again(self, item: Checked) -> list[Point]:
        """A box marked offline when the broker lost its sessions sent something live: it is connected again."""
        topic, message = item.outcome.topic, item.message
        if message.retain:
            return []
        self._offline_until_heard.discard(topic.box)
        if topic.kind is Kind.STATUS:
            return []   # its own status point says it
        return [schema.status_point(topic.box, topic.district, True, int(message.received * 1000) - 1)]

    def _health_seqs(self, health: Health, now_ms: int) -> list[Gap]:
        """A health message's last assigned seq (a lost tail is a gap) and its seqs dropped by policy."""
        changed: list[Gap] = []
        if health.last_seq is not None:
            changed.extend(self.tracker.expect(health.box, health.district, health.last_seq, now_ms))
        for dropped in health.dropped_seqs or []:
            closed = self.tracker.close_by_policy(health.box, health.district, dropped.from_seq, dropped.to_seq,
                                                  now_ms)
            if closed:
                log.warning("box.dropped_by_policy box=%s class=%s from_seq=%d to_seq=%d", health.box, dropped.kind,
                            dropped.from_seq, dropped.to_seq)
            changed.extend(closed)
        return changed

    # ------------------------------------------------------------------ detections and leads

    def _detection(self, item: Checked, det: Detection, leads: dict[str, Lead], opened: set[str]) -> list[Point]:
        merge = self.book.add(det, verified=self.evidence.has, mark=item.verify)
        if merge is None:
            self.stats["duplicate"] += 1
            log.debug("detection.duplicate id=%s box=%s seq=%d", det.id, det.box, det.seq)
            return []
        lead = merge.lead
        if self.verifier.broken and det.box in self.verifier.broken and det.box not in lead.chain_broken:
            lead.chain_broken.append(det.box)
        points = [schema.detection_point(det, lead, merge.entry)]
        earlier_picture = self.pending_evidence.pop(det.id)
        if earlier_picture is not None and earlier_picture != det.evidence_sha256:
            points.append(self._evidence_mismatch(item.message, det.id, earlier_picture, det.evidence_sha256))
            lead.evidence_altered = det.id
        if det.evidence_sha256 and (earlier_picture is not None or self.evidence.has(det.evidence_sha256)):
            self.evidence.detection_arrived(det.id, lead.lead_id)   # its picture, waiting, is now kept
        if merge.opened:
            route = self.router.route(lead.district, lead.lat, lead.lon)
            lead.team, lead.route = route.team, route.source
            opened.add(lead.lead_id)
            self.stats["leads_opened"] += 1
        if lead.status != "candidate":
            leads[lead.lead_id] = lead
        return points

    def _lead_points(self, leads: dict[str, Lead], opened: set[str]) -> list[Point]:
        points = []
        for lead in leads.values():
            if lead.team is None:
                route = self.router.route(lead.district, lead.lat, lead.lon)
                lead.team, lead.route = route.team, route.source
            points.append(schema.lead_point(lead, with_status=lead.lead_id in opened))
        return points

    # ------------------------------------------------------------------ evidence

    def _evidence(self, item: Checked, leads: dict[str, Lead], now_ms: int) -> list[Point]:
        topic = item.outcome.topic
        jpeg: bytes = item.outcome.message
        detection_id = topic.detection_id
        sha = hashlib.sha256(jpeg).hexdigest()
        known = self.book.entry_for(detection_id)
        if known is not None and known[1].evidence != sha:
            known[0].evidence_altered = detection_id   # flagged on the lead: a picture its detection did not name
            if known[0].status != "candidate":
                leads[known[0].lead_id] = known[0]
            return [self._evidence_mismatch(item.message, detection_id, sha, known[1].evidence)]
        try:
            self.evidence.admit(jpeg, box=topic.box, district=topic.district, detection_id=detection_id,
                                lead_id=known[0].lead_id if known else None, known=known is not None, now_ms=now_ms)
        except EvidenceRefused as exc:
            self.evidence_refused[topic.box] += 1
            self.stats["evidence_refused"] += 1
            log.warning("evidence.refused box=%s detection=%s reason=%s", topic.box, detection_id, exc.reason)
            return [self._dead_letter(Rejected(item.message.topic, exc.reason, item.message.payload), item.message,
                                      quiet=True)]
        if known is None:
            self.pending_evidence.add(detection_id, sha)
        else:
            lead = self.book.evidence_arrived(detection_id, sha)
            if lead is not None and lead.status != "candidate":
                leads[lead.lead_id] = lead
        log.debug("evidence.stored detection=%s sha256=%s known=%s", detection_id, sha, known is not None)
        self._serial += 1
        return [schema.evidence_point(topic.box, topic.district, detection_id, sha, len(jpeg),
                                     int(item.message.received * 1000), self._serial)]

    def _evidence_mismatch(self, message: Incoming, detection_id: str, actual: str, named: str | None) -> Point:
        self.stats["evidence_mismatch"] += 1
        reason = (f"evidence for detection {detection_id} has sha256 {actual}, but the detection names "
                  f"{named or 'no picture'}")
        log.warning("evidence.mismatch detection=%s actual=%s named=%s", detection_id, actual, named)
        return self._dead_letter(Rejected(message.topic, reason, message.payload), message, quiet=True)

    def _expired_evidence(self, now_ms: int) -> list[Point]:
        """Pictures whose detection never came within the wait: deleted, and dead-lettered (every 10 s)."""
        if now_ms < self._next_expiry_ms:
            return []
        self._next_expiry_ms = now_ms + 10_000
        points = []
        for gone in self.evidence.expire(now_ms):
            self.pending_evidence.pop(gone.detection_id)
            self.stats["evidence_expired"] += 1
            reason = (f"no detection {gone.detection_id} arrived within {self.evidence.budget.wait_s:g} s of its "
                      f"picture (sha256 {gone.sha256}, {gone.bytes} bytes); the picture is not kept")
            log.warning("evidence.expired box=%s detection=%s bytes=%d", gone.box, gone.detection_id, gone.bytes)
            topic = f"city/{gone.district}/{gone.box}/evidence/{gone.detection_id}"
            self._serial += 1
            points.append(schema.rejected_point(Rejected(topic, reason, b""), now_ms, self._serial))
        return points

    def _evidence_budget_points(self, boxes: dict[str, str], now_ms: int) -> list[Point]:
        """Per box that sent pictures in the batch: its disk use, its budget, and pictures refused since start."""
        return [schema.box_evidence_point(box, district, self.evidence.used(box), self.evidence.budget.max_box_bytes,
                                          self.evidence.used(), self.evidence.budget.max_total_bytes,
                                          self.evidence_refused[box], now_ms)
                for box, district in boxes.items()]

    # ------------------------------------------------------------------ gaps and dead letters

    def _gap_points(self, gaps) -> list[Point]:
        points = []
        for gap in gaps:
            if gap.is_open and gap.missing == gap.to_seq - gap.from_seq + 1:
                self.stats["gaps_opened"] += 1
                log.warning("box.gap_opened box=%s district=%s from_seq=%d to_seq=%d missing=%d", gap.box,
                            gap.district, gap.from_seq, gap.to_seq, gap.missing)
            elif gap.is_open:
                log.info("box.gap_narrowed box=%s from_seq=%d to_seq=%d missing=%d", gap.box, gap.from_seq,
                         gap.to_seq, gap.missing)
            else:
                self.stats["gaps_closed"] += 1
                log.info("box.gap_closed box=%s district=%s from_seq=%d to_seq=%d backfilled=%d policy=%d", gap.box,
                         gap.district, gap.from_seq, gap.to_seq, gap.backfilled, gap.policy)
            points.append(schema.gap_point(gap))
        return points

    def _dead_letter(self, rejected: Rejected, message: Incoming, quiet: bool = False) -> Point:
        self.stats["rejected"] += 1
        self._serial += 1
        if not quiet:
            log.warning("message.rejected topic=%r reason=%r payload=%r", rejected.topic[:120],
                        rejected.reason[:300], rejected.payload[:LOG_PAYLOAD_BYTES])
        return schema.rejected_point(rejected, int(message.received * 1000), self._serial)


def _log_opened(leads: list[Lead]) -> None:
    """One line for the leads a batch opened, each as ``lead=… category=… …``, separated by ``; ``.

    One record per batch, not per lead: every record is a write, and in a
    burst (a backlog after an outage) a line per lead cost the ingest loop a
    fifth of its time, mostly waiting to take the interpreter back.
    """
    if leads:
        log.info("lead.opened count=%d %s", len(leads), "; ".join(
            f"lead={lead.lead_id} category={lead.category} district={lead.district} zone={lead.zone} "
            f"team={lead.team} route={lead.route} detections={lead.detections}" for lead in leads))


def _refused_seq(message: Incoming) -> tuple[str, str, int] | None:
    """(box, district, seq) of a refused message whose topic names a box and whose JSON names a seq."""
    try:
        topic = Topic.parse(message.topic)
        if topic.kind not in (Kind.DETECTION, Kind.SENSOR, Kind.HEALTH):
            return None
        seq = json.loads(message.payload).get("seq")
    except (ContractError, ValueError, AttributeError, RecursionError):
        return None
    if type(seq) is not int or not 0 <= seq < 2**63:
        return None
    return topic.box, topic.district, seq
