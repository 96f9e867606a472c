"""Logging that says the first of a kind at once and then at most once per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Warnings keyed by a kind (for example ``port:unparseable``).

    The first warning of a kind is logged; further ones within ``interval_s``
    are only counted, and the next one logged says how many were held back
    (``suppressed=N``). A flood of garbage on one port thus costs a line a
    minute, not a line a byte.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``kind`` was logged recently; True if it was logged."""
        now = self._monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            self._logger.warning(message + " suppressed=%d", *args, suppressed)
        else:
            self._logger.warning(message, *args)
        return True
