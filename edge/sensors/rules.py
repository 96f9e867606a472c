"""Threshold rules: readings in, one event per episode out.

An episode of a rule (say ``bin_overflow``, fill ≥ 90 %) starts when its
condition has held for ``hold_s`` — the value at or past the limit, inside
the rule's time window if it has one. It ends when the opposite has held for
``hold_s``: the value back past the limit by ``hysteresis`` (below 85 % with a
hysteresis of 5), or the time outside the window. The start publishes the
rule's event once; the end publishes ``<event>_cleared`` once unless
``report_clear`` is off. A value hovering around the limit thus gives one
episode, not a stream of events.

Rules are judged on reading times (``ts_ms``), so a window's end is noticed
with the first reading after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edge.sensors.config import ThresholdRule


class RuleTracker:
    """The episode state of one rule."""

    def __init__(self, rule: ThresholdRule) -> None:
        self.rule = rule
        self.active = False
        self._hold_ms = rule.hold_s * 1000.0
        self._change_since: int | None = None  # when the condition for the next change began to hold

    def update(self, value: float, ts_ms: int) -> str | None:
        """The event to publish for this reading, if any."""
        if not self.active:
            if self._persisted(self._starts(value, ts_ms), ts_ms):
                self.active = True
                return self.rule.event
            return None
        if self._persisted(self._ends(value, ts_ms), ts_ms):
            self.active = False
            return self.rule.cleared_event if self.rule.report_clear else None
        return None

    def _starts(self, value: float, ts_ms: int) -> bool:
        return self._in_window(ts_ms) and self._past_limit(value)

    def _ends(self, value: float, ts_ms: int) -> bool:
        return not self._in_window(ts_ms) or self._back_past_hysteresis(value)

    def _in_window(self, ts_ms: int) -> bool:
        return self.rule.window is None or self.rule.window.contains(ts_ms)

    def _past_limit(self, value: float) -> bool:
        if self.rule.above is not None:
            return value >= self.rule.above
        return value <= self.rule.below

    def _back_past_hysteresis(self, value: float) -> bool:
        if self.rule.above is not None:
            return value < self.rule.above - self.rule.hysteresis
        return value > self.rule.below + self.rule.hysteresis

    def _persisted(self, condition: bool, ts_ms: int) -> bool:
        """Whether ``condition`` has now held for hold_s; a change resets the count."""
        if not condition:
            self._change_since = None
            return False
        if self._change_since is None or ts_ms < self._change_since:  # a clock stepped back starts over
            self._change_since = ts_ms
        if ts_ms - self._change_since >= self._hold_ms:
            self._change_since = None
            return True
        return False


class RuleSet:
    """The rules of one sensor."""

    def __init__(self, rules: Sequence[ThresholdRule]) -> None:
        self._trackers = [RuleTracker(rule) for rule in rules]

    def update(self, values: Mapping[str, float], ts_ms: int) -> list[str]:
        """Events this reading causes, in rule order; rules whose value it lacks are left as they are."""
        events = []
        for tracker in self._trackers:
            value = values.get(tracker.rule.value)
            if value is None:
                continue
            event = tracker.update(value, ts_ms)
            if event is not None:
                events.append(event)
        return events

    def active_events(self) -> list[str]:
        return [t.rule.event for t in self._trackers if t.active]
