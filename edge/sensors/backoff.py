"""Bounded exponential backoff between attempts to open a port."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays of ``initial_s``, then times ``factor`` each failure, never above ``max_s``.

    ``Backoff(0, 0)`` retries at once (tests); a box uses the defaults.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError("backoff needs 0 <= initial_s <= max_s and factor >= 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (1, 2, ...)."""
        if failures <= 0:
            return 0.0
        delay = self.initial_s
        for _ in range(failures - 1):
            delay *= self.factor
            if delay >= self.max_s:
                return self.max_s
        return min(delay, self.max_s)
