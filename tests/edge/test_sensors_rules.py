"""Threshold rules: one event per episode, hysteresis and hold against flapping, night windows."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.sensors.config import ThresholdRule, TimeWindow
from edge.sensors.rules import RuleSet, RuleTracker

VIENNA = ZoneInfo("Europe/Vienna")
T0 = 1_800_000_000_000  # 2027-01-15, UTC


def ms(local: datetime) -> int:
    return int(local.timestamp() * 1000)


def run(rule: ThresholdRule, samples: list[tuple[int, float]]) -> list[tuple[int, str]]:
    tracker = RuleTracker(rule)
    events = []
    for ts, value in samples:
        event = tracker.update(value, ts)
        if event:
            events.append((ts, event))
    return events


def every_second(values: list[float], start: int = T0) -> list[tuple[int, float]]:
    return [(start + i * 1000, v) for i, v in enumerate(values)]


BIN = ThresholdRule(event="bin_overflow", value="fill_pct", above=90, hysteresis=5)


def test_bin_overflow_once_per_episode_and_cleared_once():
    events = run(BIN, every_second([50, 89.9, 90, 95, 91, 86, 92, 84, 80, 91]))
    assert [e for _, e in events] == ["bin_overflow", "bin_overflow_cleared", "bin_overflow"]
    assert events[0][0] == T0 + 2000
    assert events[1][0] == T0 + 7000


def test_without_hysteresis_the_episode_ends_just_below_the_limit():
    rule = ThresholdRule(event="bin_overflow", value="fill_pct", above=90)
    assert [e for _, e in run(rule, every_second([90, 89.99, 90]))] == [
        "bin_overflow", "bin_overflow_cleared", "bin_overflow"]


def test_clear_event_can_be_switched_off():
    rule = BIN.model_copy(update={"report_clear": False})
    assert [e for _, e in run(rule, every_second([95, 50, 95]))] == ["bin_overflow", "bin_overflow"]


def test_below_rules_fire_low():
    rule = ThresholdRule(event="battery_low", value="battery_v", below=3.3, hysteresis=0.2)
    assert [e for _, e in run(rule, every_second([3.6, 3.3, 3.4, 3.51, 3.2]))] == [
        "battery_low", "battery_low_cleared", "battery_low"]


def test_hold_needs_the_condition_to_persist():
    rule = ThresholdRule(event="dust", value="pm10", above=50, hold_s=10)
    # a 5-second spike is no episode; 10 s above the limit is
    samples = every_second([60] * 5 + [20] + [60] * 11)
    events = run(rule, samples)
    assert events == [(T0 + 16_000, "dust")]


def test_hold_also_delays_the_end():
    rule = ThresholdRule(event="dust", value="pm10", above=50, hold_s=3)
    events = run(rule, every_second([60, 60, 60, 60, 10, 10, 60, 10, 10, 10, 10]))
    assert [e for _, e in events] == ["dust", "dust_cleared"]
    assert events[1][0] == T0 + 10_000


def test_a_clock_stepping_back_restarts_the_hold():
    rule = ThresholdRule(event="dust", value="pm10", above=50, hold_s=10)
    stepped_back = T0 - 60_000
    samples = [(T0, 60), (T0 + 9_000, 60), (stepped_back, 60), (stepped_back + 9_000, 60), (stepped_back + 10_000, 60)]
    assert run(rule, samples) == [(stepped_back + 10_000, "dust")]


NIGHT = TimeWindow(start=time(22), end=time(6), timezone="Europe/Vienna")
NOISE = ThresholdRule(event="night_construction_noise", value="laeq_dba", above=65, hysteresis=3, hold_s=60,
                      window=NIGHT)


@pytest.mark.parametrize("local, inside", [
    (datetime(2027, 3, 10, 21, 59, 59, tzinfo=VIENNA), False),
    (datetime(2027, 3, 10, 22, 0, tzinfo=VIENNA), True),
    (datetime(2027, 3, 11, 0, 30, tzinfo=VIENNA), True),
    (datetime(2027, 3, 11, 5, 59, 59, tzinfo=VIENNA), True),
    (datetime(2027, 3, 11, 6, 0, tzinfo=VIENNA), False),
    (datetime(2027, 3, 11, 12, 0, tzinfo=VIENNA), False),
])
def test_night_window_runs_over_midnight_in_local_time(local, inside):
    assert NIGHT.contains(ms(local)) is inside


def test_window_follows_daylight_saving_time():
    # 22:30 in Vienna is 20:30 UTC in summer and 21:30 UTC in winter
    summer = datetime(2027, 7, 1, 20, 30, tzinfo=ZoneInfo("UTC"))
    winter = datetime(2027, 1, 15, 20, 30, tzinfo=ZoneInfo("UTC"))
    assert NIGHT.contains(ms(summer))
    assert not NIGHT.contains(ms(winter))


def test_day_window_does_not_wrap():
    day = TimeWindow(start=time(7), end=time(19), timezone="UTC")
    assert day.contains(ms(datetime(2027, 1, 1, 12, tzinfo=ZoneInfo("UTC"))))
    assert not day.contains(ms(datetime(2027, 1, 1, 20, tzinfo=ZoneInfo("UTC"))))


def test_night_noise_only_at_night_and_the_morning_ends_it():
    evening = datetime(2027, 3, 10, 21, 50, tzinfo=VIENNA)
    samples = [(ms(evening + timedelta(minutes=m)), 80.0) for m in range(0, 30)]  # loud 21:50..22:19
    samples += [(ms(datetime(2027, 3, 11, 6, 0, 30, tzinfo=VIENNA)), 80.0),
                (ms(datetime(2027, 3, 11, 6, 1, 30, tzinfo=VIENNA)), 80.0)]
    events = run(NOISE, samples)
    assert [e for _, e in events] == ["night_construction_noise", "night_construction_noise_cleared"]
    # the window opens at 22:00 and the hold is a minute
    assert events[0][0] == ms(datetime(2027, 3, 10, 22, 1, tzinfo=VIENNA))
    assert events[1][0] == ms(datetime(2027, 3, 11, 6, 1, 30, tzinfo=VIENNA))


def test_rule_set_reports_events_in_rule_order_and_skips_missing_values():
    rules = RuleSet([ThresholdRule(event="dust", value="pm10", above=50),
                     ThresholdRule(event="fine_dust", value="pm2_5", above=25)])
    assert rules.update({"pm2_5": 30, "pm10": 60}, T0) == ["dust", "fine_dust"]
    assert rules.update({"rh": 40}, T0 + 1000) == []
    assert rules.active_events() == ["dust", "fine_dust"]
    assert rules.update({"pm10": 10}, T0 + 2000) == ["dust_cleared"]
    assert rules.active_events() == ["fine_dust"]


@pytest.mark.parametrize("kwargs, expected", [
    ({"event": "dust", "value": "pm10"}, "exactly one of 'above' and 'below'"),
    ({"event": "dust", "value": "pm10", "above": 1, "below": 0}, "exactly one of"),
    ({"event": "Dust", "value": "pm10", "above": 1}, "event"),
    ({"event": "d" * 57, "value": "pm10", "above": 1}, "event"),
    ({"event": "dust", "value": "pm10", "above": 1, "hysteresis": -1}, "hysteresis"),
    ({"event": "dust", "value": "pm10", "above": 1,
      "window": {"start": "22:00", "end": "06:00", "timezone": "Mars/Olympus"}}, "unknown time zone 'Mars/Olympus'"),
    ({"event": "dust", "value": "pm10", "above": 1,
      "window": {"start": "22:00", "end": "22:00", "timezone": "UTC"}}, "start and end are equal"),
    ({"event": "dust", "value": "pm10", "above": 1,
      "window": {"start": "25:00", "end": "06:00", "timezone": "UTC"}}, "window.start"),
])
def test_bad_rules_are_refused(kwargs, expected):
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        ThresholdRule.model_validate(kwargs)


# ------------------------------------------------------------------ properties

readings = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200)


@given(readings, st.floats(0, 100), st.floats(0, 20), st.sampled_from([0, 2, 5]))
def test_events_alternate_start_and_clear(values, limit, hysteresis, hold_s):
    rule = ThresholdRule(event="e", value="v", above=limit, hysteresis=hysteresis, hold_s=hold_s)
    names = [e for _, e in run(rule, every_second(values))]
    assert names == ["e", "e_cleared"] * (len(names) // 2) + ["e"] * (len(names) % 2)


@given(st.lists(st.floats(85.01, 100, allow_nan=False), min_size=1, max_size=200))
def test_values_wobbling_inside_the_hysteresis_band_give_one_episode(values):
    # once started, anything at or above 85 keeps a 90/5 episode going
    names = [e for _, e in run(BIN, every_second([95.0] + values))]
    assert names == ["bin_overflow"]


@given(readings, st.floats(0, 100))
def test_start_needs_the_limit_and_clear_needs_the_band(values, limit):
    rule = ThresholdRule(event="e", value="v", above=limit, hysteresis=5)
    samples = every_second(values)
    for ts, event in run(rule, samples):
        value = dict(samples)[ts]
        assert value >= limit if event == "e" else value < limit - 5


@given(st.integers(0, 24 * 60 - 1), st.integers(0, 24 * 60 - 1), st.integers(T0, T0 + 366 * 86_400_000),
       st.sampled_from(["Europe/Vienna", "America/New_York", "Asia/Kolkata", "UTC"]))
def test_window_agrees_with_plain_minute_counting(start_min, end_min, ts, zone):
    if start_min == end_min:
        return
    window = TimeWindow(start=time(start_min // 60, start_min % 60), end=time(end_min // 60, end_min % 60),
                        timezone=zone)
    local = datetime.fromtimestamp(ts / 1000, ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    expected = (start_min <= minute < end_min) if start_min < end_min else (minute >= start_min or minute < end_min)
    assert window.contains(ts) is expected
