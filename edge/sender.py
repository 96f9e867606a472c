"""Moves messages from the spool to the broker, and forgets each only once it is safe.

Safe means, for a message with a ``seq`` (detections, sensor readings, health):
the gateway confirmed it stored (``confirmed``). The broker's acknowledgement
(PUBACK) only frees its place in the in-flight window: a broker that crashes
before the gateway took the message loses it from memory, so the box still
holds it and sends it again. A message without a seq (evidence, config acks)
leaves on the PUBACK.

Re-sending: a message the broker acknowledged and no confirmation covered
after ``resend_after_s`` is sent again, oldest first; each further try of it
waits twice as long, up to ``resend_max_s``, and at most ``resend_in_flight``
distinct messages are being sent again until a confirmation covers them (the
oldest; the rest wait their turn), so a long gateway or InfluxDB outage puts
at most that many copies per backoff period onto the broker's queues. The
gateway ignores repeats.

Mixed fleets: a box whose spool never heard a confirmation, holding a
message acknowledged by the broker more than ``confirm_timeout_s`` ago, falls
back to forgetting messages on the PUBACK (``mode`` "puback", said in its
health); the first confirmation it hears switches it back for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from contract import Confirmation, ResendRequest
from edge.mqtt import BoxLink
from edge.spool import Spool

log = logging.getLogger(__name__)

CONFIRMED = "confirmed"
PUBACK = "puback"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """When unconfirmed messages are sent again, and when a box stops waiting for confirmations."""

    resend_after_s: float = 60.0
    resend_max_s: float = 600.0
    resend_in_flight: int = 50
    confirm_timeout_s: float = 600.0


@dataclass(slots=True)
class _Awaiting:
    seq: int
    acked_at: float      # monotonic time of the last PUBACK
    tries: int           # sends so far
    first_acked_at: float
    resent: bool = False  # sent again at least once: one of the copies the cap counts


class Sender:
    """A thread that keeps up to ``window`` spooled messages in flight, oldest first."""

    def __init__(self, spool: Spool, window: int = 100, idle_s: float = 0.05,
                 policy: DeliveryPolicy = DeliveryPolicy(), clock: Callable[[], float] = time.monotonic,
                 tick: Callable[[int], None] | None = None) -> None:
        self.spool = spool
        self.tick = tick   # called on every turn of the loop with the messages just sent again (the chain's seals)
        self.resent_newest: tuple[int, bytes] | None = None   # seq and bytes of the newest message sent again
        self.window = window
        self.idle_s = idle_s
        self.policy = policy
        self.clock = clock
        self.link: BoxLink | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[int, tuple[int, int | None, bool]] = {}   # mqtt mid -> (spool row, seq, re-send)
        self._early_acks: set[int] = set()     # acks that beat publish() returning
        self._acked_rows: list[int] = []        # acknowledged, to be removed from the spool
        self._awaiting: dict[int, _Awaiting] = {}   # spool row -> acknowledged by the broker, not yet confirmed
        self._confirmations: list[Confirmation] = []
        self._requests: list[ResendRequest] = []
        self._resends_in_flight = 0
        self._cursor = 0                        # highest spool row handed to paho
        self._generation = 0                    # link connection the in-flight messages were sent on
        self.mode = CONFIRMED if policy.confirm_timeout_s > 0 else PUBACK
        self.resent = 0
        self._heard: bool | None = None          # a confirmation was ever heard (read from the spool once)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-sender", daemon=True)

    def attach(self, link: BoxLink) -> None:
        self.link = link

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """A new message is in the spool."""
        self._wake.set()

    def acknowledge(self, mid: int) -> None:
        """Called from paho's thread when the broker acknowledged ``mid``."""
        with self._lock:
            sent = self._in_flight.pop(mid, None)
            if sent is None:
                self._early_acks.add(mid)
                return
            self._acked(*sent)
        self._wake.set()

    def _acked(self, row: int, seq: int | None, resend: bool) -> None:
        """Under the lock: the broker has ``row``."""
        if resend:
            self._resends_in_flight -= 1
        if seq is None or self.mode == PUBACK:
            self._awaiting.pop(row, None)
            self._acked_rows.append(row)
            return
        now = self.clock()
        earlier = self._awaiting.get(row)
        tries = earlier.tries + 1 if earlier else 1
        self._awaiting[row] = _Awaiting(seq, now, tries, earlier.first_acked_at if earlier else now,
                                        earlier.resent if earlier else False)

    def refused(self, mid: int) -> None:
        """The broker refused ``mid``: it stays in the spool and is sent again from there."""
        with self._lock:
            sent = self._in_flight.pop(mid, None)
            if sent is not None:
                row, _, resend = sent
                if resend:
                    self._resends_in_flight -= 1
                    waiting = self._awaiting.get(row)
                    if waiting is not None:
                        waiting.acked_at = 0.0
                else:
                    self._cursor = min(self._cursor, row - 1)
        self._wake.set()

    def confirmed(self, confirmation: Confirmation) -> None:
        """Called from paho's thread with the gateway's confirmation; applied on the sender's thread."""
        with self._lock:
            self._confirmations.append(confirmation)
        self._wake.set()

    def resend_requested(self, request: ResendRequest) -> None:
        """The gateway misses these seqs: send again whatever of them the spool holds."""
        with self._lock:
            self._requests.append(request)
        self._wake.set()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def awaiting(self) -> int:
        """Messages the broker has and the gateway has not confirmed yet."""
        with self._lock:
            return len(self._awaiting)

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty; True if it emptied in time.

        What waits for a confirmation is sent again at once (once): on the way out there is no time to wait
        for ``resend_after_s``.
        """
        with self._lock:
            for waiting in self._awaiting.values():
                if waiting.acked_at != float("inf"):
                    waiting.acked_at = 0.0
        deadline = threading.Event()
        waited = 0.0
        while self.spool.depth() > 0 and waited < timeout:
            self._wake.set()
            deadline.wait(0.05)
            waited += 0.05
        return self.spool.depth() == 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._forget_acknowledged()

    def _forget_acknowledged(self) -> None:
        with self._lock:
            rows, self._acked_rows = self._acked_rows, []
        self.spool.remove(rows)

    def _run(self) -> None:
        resent = 0
        while not self._stop.is_set():
            self._apply_confirmations()
            self._check_fallback()
            self._forget_acknowledged()
            if self.tick is not None:
                self.tick(resent)   # before sending, so a seal due now leaves in this turn
            sent = self._send_some()
            resent = self._resend_due()
            sent += resent
            if not sent:
                self._wake.wait(self.idle_s)
                self._wake.clear()

    # ------------------------------------------------------------------ confirmations

    def _apply_confirmations(self) -> None:
        with self._lock:
            confirmations, self._confirmations = self._confirmations, []
        for confirmation in confirmations:
            ranges = [tuple(r) for r in confirmation.ranges]
            gone = self.spool.confirm(confirmation.upto, ranges)
            self._heard = True
            with self._lock:
                for row in gone:
                    self._awaiting.pop(row, None)
                if self.mode == PUBACK:
                    log.warning("delivery.mode mode=confirmed (a gateway confirms again)")
                    self.mode = CONFIRMED
            log.debug("delivery.confirmed upto=%d ranges=%d forgotten=%d", confirmation.upto, len(ranges), len(gone))

    def _check_fallback(self) -> None:
        """No confirmation ever heard, and the broker acknowledged a message long ago: free on PUBACK."""
        if self.mode != CONFIRMED or self.policy.confirm_timeout_s <= 0:
            return
        now = self.clock()
        with self._lock:
            oldest = min((a.first_acked_at for a in self._awaiting.values()), default=now)
        if now - oldest < self.policy.confirm_timeout_s:
            return
        if self._heard is None:
            self._heard = self.spool.confirmation_heard()
        if self._heard:
            return
        with self._lock:
            self.mode = PUBACK
            self._acked_rows.extend(self._awaiting)
            freed = len(self._awaiting)
            self._awaiting.clear()
        log.warning("delivery.mode mode=puback: no gateway confirmation within %.0f s; messages now leave the "
                    "spool on the broker's acknowledgement (freed %d)", self.policy.confirm_timeout_s, freed)

    # ------------------------------------------------------------------ sending

    def _send_some(self) -> int:
        link = self.link
        if link is None or not link.connected:
            return 0
        if link.generation != self._generation:
            # After a reconnect paho re-sends what was in flight; new messages wait until those
            # are acknowledged, so the broker sees seq in order. Re-sends of the old connection
            # that paho dropped are due again.
            if self.in_flight():
                return 0
            self._generation = link.generation
        room = self.window - self.in_flight()
        if room <= 0:
            return 0
        sent = 0
        for message in self.spool.after(self._cursor, room):
            if not self._publish(link, message.row, message.seq, message.topic, message.payload, message.qos,
                                 message.retain, resend=False):
                break
            self._cursor = message.row
            sent += 1
        return sent

    def _publish(self, link: BoxLink, row: int, seq: int | None, topic: str, payload: bytes, qos: int,
                 retain: bool, *, resend: bool) -> bool:
        mid = link.publish(topic, payload, qos, retain)
        if mid is None:
            return False
        with self._lock:
            if resend:
                self._resends_in_flight += 1
            if mid in self._early_acks:
                self._early_acks.discard(mid)
                self._acked(row, seq, resend)
            else:
                self._in_flight[mid] = (row, seq, resend)
        return True

    def _resend_due(self) -> int:
        """Send again, oldest first, what stayed unconfirmed too long or the gateway asked for."""
        link = self.link
        if link is None or not link.connected or link.generation != self._generation:
            return 0
        now = self.clock()
        with self._lock:
            requests, self._requests = self._requests, []
            room = min(self.policy.resend_in_flight - self._resends_in_flight, self.window - len(self._in_flight))
            if room <= 0 and not requests:
                return 0
            wanted = {row for row, a in self._awaiting.items()
                      if any(r.from_seq <= a.seq <= r.to_seq for r in requests)}
            # At most resend_in_flight messages are being sent again until a confirmation covers them: those
            # go again as their backoff allows, others join them only as confirmations free places.
            resending = [row for row, a in self._awaiting.items() if a.resent]
            joining = sorted(row for row, a in self._awaiting.items()
                             if not a.resent)[:max(0, self.policy.resend_in_flight - len(resending))]
            due = sorted(row for row in (*resending, *joining)
                         if (a := self._awaiting[row]).acked_at == 0.0 or now - a.acked_at >= self._wait_s(a.tries))
            due = sorted({*due, *wanted})
        if requests:
            log.info("delivery.resend_requested ranges=%s held=%d",
                     ",".join(f"{r.from_seq}-{r.to_seq}" for r in requests), len(wanted))
        if room <= 0:
            return 0
        sent = 0
        newest: tuple[int, bytes] | None = None
        for message in self.spool.rows(due[:room]):
            with self._lock:
                waiting = self._awaiting.get(message.row)
                if waiting is None:
                    continue   # confirmed meanwhile
                waiting.acked_at = float("inf")   # in flight again: not due until its PUBACK
                waiting.resent = True
            if not self._publish(link, message.row, message.seq, message.topic, message.payload, message.qos,
                                 message.retain, resend=True):
                with self._lock:
                    waiting.acked_at = 0.0   # due again at once
                break
            sent += 1
            if message.seq is not None and (newest is None or message.seq > newest[0]):
                newest = (message.seq, message.payload)
        if newest is not None:
            self.resent_newest = newest
        self.resent += sent
        if sent:
            log.info("delivery.resent messages=%d awaiting=%d", sent, self.awaiting())
        return sent

    def _wait_s(self, tries: int) -> float:
        return min(self.policy.resend_max_s, self.policy.resend_after_s * 2 ** min(tries - 1, 32))
