"""Time as the sensor package sees it: wall time for readings, monotonic time for intervals."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock UTC epoch milliseconds: the ``ts`` of a reading."""

    def monotonic(self) -> float:
        """Seconds for measuring intervals; never jumps."""


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
