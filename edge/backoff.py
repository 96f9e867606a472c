"""Bounded exponential backoff for reopening what dropped: camera streams, serial ports."""

from __future__ import annotations

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
