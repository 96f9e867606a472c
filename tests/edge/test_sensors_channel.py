"""A sensor's channel: readings at most at the publish rate, events at once, callback trouble survived."""

import logging

import pytest

from common.backoff import Backoff
from edge.sensors.channel import SensorChannel
from edge.sensors.config import ThresholdRule
from edge.sensors.ratelog import RateLimitedLog

T0 = 1_800_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now_ms(self) -> int:
        return T0 + int(self.t * 1000)

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sent():
    return []


def channel(clock, sent, publish_s=10.0, rules=(), fail=None):
    errors = []

    def publish(name, values, event, ts_ms):
        if fail:
            raise fail
        sent.append((name, values, event, ts_ms))

    ch = SensorChannel("bin-1", publish_s, list(rules), publish, clock, lambda name, exc: errors.append(exc))
    ch.errors = errors
    return ch


def test_first_reading_at_once_then_the_latest_per_interval(clock, sent):
    ch = channel(clock, sent)
    ch.accept({"fill_pct": 10.0}, T0)
    clock.t += 3
    ch.accept({"fill_pct": 11.0}, T0 + 3000)
    clock.t += 3
    ch.accept({"fill_pct": 12.0}, T0 + 6000)
    assert sent == [("bin-1", {"fill_pct": 10.0}, None, T0)]
    clock.t += 3.9
    ch.flush_due()
    assert len(sent) == 1
    clock.t += 0.1
    ch.flush_due()
    assert sent[-1] == ("bin-1", {"fill_pct": 12.0}, None, T0 + 6000)  # latest values, stamped when read
    clock.t += 60
    ch.flush_due()
    assert len(sent) == 2  # nothing new, nothing sent


def test_events_go_out_at_once_and_count_as_the_reading(clock, sent):
    ch = channel(clock, sent, rules=[ThresholdRule(event="bin_overflow", value="fill_pct", above=90)])
    ch.accept({"fill_pct": 50.0}, T0)
    clock.t += 1
    ch.accept({"fill_pct": 95.0}, T0 + 1000)
    assert sent[-1] == ("bin-1", {"fill_pct": 95.0}, "bin_overflow", T0 + 1000)
    clock.t += 9.5
    ch.flush_due()
    assert len(sent) == 2  # the event carried these values; the interval restarted with it
    clock.t += 1
    ch.accept({"fill_pct": 20.0}, T0 + 11_500)
    assert sent[-1][2] == "bin_overflow_cleared"
    assert ch.snapshot().active_events == ()


def test_snapshot_has_the_latest_values_and_active_events(clock, sent):
    ch = channel(clock, sent, rules=[ThresholdRule(event="dust", value="pm10", above=50)])
    ch.accept({"pm10": 70.0, "pm2_5": 30.0}, T0)
    snap = ch.snapshot()
    assert (snap.values, snap.ts_ms, snap.active_events) == ({"pm10": 70.0, "pm2_5": 30.0}, T0, ("dust",))


def test_a_failing_callback_is_reported_not_raised(clock, sent):
    ch = channel(clock, sent, fail=RuntimeError("spool full"))
    ch.accept({"fill_pct": 10.0}, T0)
    assert [str(e) for e in ch.errors] == ["spool full"]


def test_backoff_grows_to_its_bound():
    backoff = Backoff(first_s=0.5, max_s=4.0)
    assert [backoff.delay(n) for n in range(0, 7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(0, 0).delay(10) == 0.0
    assert Backoff().delay(10_000) == 30.0
    with pytest.raises(ValueError):
        Backoff(first_s=5, max_s=1)


def test_rate_limited_log_says_how_many_it_held_back(caplog):
    now = [0.0]
    ratelog = RateLimitedLog(logging.getLogger("test.ratelog"), interval_s=60, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        assert ratelog.warning("p:unparseable", "sensor.line_rejected port=%s", "p")
        for _ in range(5):
            now[0] += 1
            assert not ratelog.warning("p:unparseable", "sensor.line_rejected port=%s", "p")
        assert ratelog.warning("p:non_utf8", "sensor.line_rejected port=%s reason=non_utf8", "p")
        now[0] += 60
        assert ratelog.warning("p:unparseable", "sensor.line_rejected port=%s", "p")
    assert [r.getMessage() for r in caplog.records] == [
        "sensor.line_rejected port=p",
        "sensor.line_rejected port=p reason=non_utf8",
        "sensor.line_rejected port=p suppressed=5",
    ]
