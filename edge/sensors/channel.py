"""One sensor's way out: threshold rules and the publish-rate limit in front of the publish callback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from edge.sensors.clock import Clock
from edge.sensors.config import ThresholdRule
from edge.sensors.rules import RuleSet

PublishFn = Callable[[str, dict[str, float], str | None, int], None]
"""``publish(sensor_name, values, event, ts_ms)``, provided by the box runtime.

Called from the port reader threads (several may call at once) with the
sensor's latest values; ``event`` is None for a plain reading; ``ts_ms`` is
when the values were read (UTC epoch ms). It should spool a contract
``SensorReading`` and return quickly.
"""


@dataclass(frozen=True, slots=True)
class SensorSnapshot:
    name: str
    values: dict[str, float]
    ts_ms: int | None
    active_events: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"name": self.name, "values": dict(self.values), "ts": self.ts_ms,
                "active_events": list(self.active_events)}


class SensorChannel:
    """Readings of one sensor, published at most every ``publish_s``; events at once.

    The first reading goes out at once; later ones wait until ``publish_s``
    has passed since the last, and then the latest values go out (with the
    time they were read). An event goes out at once with the values that
    caused it; since those are the latest values, it also counts as the
    reading and the interval starts again.
    """

    def __init__(self, name: str, publish_s: float, rules: Sequence[ThresholdRule], publish: PublishFn,
                 clock: Clock, on_publish_error: Callable[[str, Exception], None],
                 watcher: Callable[[Mapping[str, float], int], None] | None = None) -> None:
        self.name = name
        self._publish_s = publish_s
        self._rules = RuleSet(rules)
        self._publish = publish
        self._clock = clock
        self._on_publish_error = on_publish_error
        self._watcher = watcher
        self._lock = threading.Lock()
        self._latest: dict[str, float] = {}
        self._latest_ts: int | None = None
        self._pending = False
        self._last_sent: float | None = None

    def accept(self, values: Mapping[str, float], ts_ms: int) -> None:
        """New values of the sensor (all of them: they replace the previous ones)."""
        with self._lock:
            self._latest = dict(values)
            self._latest_ts = ts_ms
            self._pending = True
        if self._watcher is not None:
            self._watcher(values, ts_ms)
        events = self._rules.update(values, ts_ms)
        if events:
            with self._lock:
                self._pending = False
                self._last_sent = self._clock.monotonic()
        for event in events:
            self._send(dict(values), event, ts_ms)
        self.flush_due()

    def flush_due(self) -> None:
        """Publish the latest values if they are new and the interval has passed."""
        now = self._clock.monotonic()
        with self._lock:
            if not self._pending or (self._last_sent is not None and now - self._last_sent < self._publish_s):
                return
            values, ts_ms = dict(self._latest), self._latest_ts
            self._pending = False
            self._last_sent = now
        self._send(values, None, ts_ms)

    def snapshot(self) -> SensorSnapshot:
        with self._lock:
            return SensorSnapshot(self.name, dict(self._latest), self._latest_ts, tuple(self._rules.active_events()))

    def _send(self, values: dict[str, float], event: str | None, ts_ms: int) -> None:
        try:
            self._publish(self.name, values, event, ts_ms)
        except Exception as exc:  # the runtime's trouble must not stop the reader
            self._on_publish_error(self.name, exc)
