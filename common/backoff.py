"""Bounded exponential backoff: reopening what dropped (camera streams, serial ports), retrying InfluxDB."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits of ``first_s``, then times ``factor`` per failure in a row, never above ``max_s``.

    ``down_after`` failures in a row make the source count as down (it is still
    retried); after ``give_up_after`` (None: never) the caller stops trying.
    ``Backoff(0, 0)`` retries at once, for tests.
    """

    first_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    down_after: int = 5
    give_up_after: int | None = None

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.max_s < self.first_s or self.factor < 1:
            raise ValueError("backoff needs 0 <= first_s <= max_s and factor >= 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (1, 2, ...)."""
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.first_s * self.factor ** min(failures - 1, 64))

    def gives_up(self, failures: int) -> bool:
        return self.give_up_after is not None and failures >= self.give_up_after


class Waits:
    """The waits of one run of tries under a ``Backoff``: ``wait`` sleeps the next one, or until ``stop`` is set."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.failures = 0

    @property
    def next_s(self) -> float:
        return self.backoff.delay(self.failures + 1)

    def wait(self, stop: threading.Event) -> None:
        delay = self.next_s
        self.failures += 1
        if delay > 0:
            stop.wait(delay)
