"""Moves messages from the spool to the broker, removing each only once acknowledged."""

from __future__ import annotations

import logging
import threading

from edge.mqtt import BoxLink
from edge.spool import Spool

log = logging.getLogger(__name__)


class Sender:
    """A thread that keeps up to ``window`` spooled messages in flight, oldest first."""

    def __init__(self, spool: Spool, window: int = 100, idle_s: float = 0.05) -> None:
        self.spool = spool
        self.window = window
        self.idle_s = idle_s
        self.link: BoxLink | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[int, int] = {}   # mqtt mid -> spool row
        self._early_acks: set[int] = set()     # acks that beat publish() returning
        self._acked_rows: list[int] = []        # acknowledged, to be removed from the spool
        self._cursor = 0                        # highest spool row handed to paho
        self._generation = 0                    # link connection the in-flight messages were sent on
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
            row = self._in_flight.pop(mid, None)
            if row is None:
                self._early_acks.add(mid)
                return
            self._acked_rows.append(row)
        self._wake.set()

    def refused(self, mid: int) -> None:
        """The broker refused ``mid``: it stays in the spool and is sent again from there."""
        with self._lock:
            row = self._in_flight.pop(mid, None)
            if row is not None:
                self._cursor = min(self._cursor, row - 1)
        self._wake.set()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty; True if it emptied in time."""
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
        while not self._stop.is_set():
            self._forget_acknowledged()
            sent = self._send_some()
            if not sent:
                self._wake.wait(self.idle_s)
                self._wake.clear()

    def _send_some(self) -> int:
        link = self.link
        if link is None or not link.connected:
            return 0
        if link.generation != self._generation:
            # After a reconnect paho re-sends what was in flight; new messages wait
            # until those are acknowledged, so the broker sees seq in order.
            if self.in_flight():
                return 0
            self._generation = link.generation
        room = self.window - self.in_flight()
        if room <= 0:
            return 0
        sent = 0
        for message in self.spool.after(self._cursor, room):
            mid = link.publish(message.topic, message.payload, message.qos, message.retain)
            if mid is None:
                break
            self._cursor = message.row
            sent += 1
            with self._lock:
                if mid in self._early_acks:
                    self._early_acks.discard(mid)
                    self._acked_rows.append(message.row)
                else:
                    self._in_flight[mid] = message.row
        return sent
