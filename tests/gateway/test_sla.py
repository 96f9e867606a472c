"""The leads' clocks: targets by category and district, working hours, and the clock states."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.config import GatewayConfigError, SlaSettings, load_gateway_config
from gateway.desk.sla import Clocks

MIN = 60_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp() * 1000)


def lead(**fields):
    return {"category": "street_vending", "district": "old-town", "status": "open", **fields}


@pytest.mark.parametrize(("minutes", "state"), [(10, "ok"), (25, "due"), (31, "overdue")])
def test_a_running_on_scene_clock_is_ok_then_due_then_overdue(minutes, state):
    clocks = Clocks(SlaSettings(dispatch_min=60))
    opened = 1_800_000_000_000
    [_, on_scene, _] = clocks.clocks(lead(opened_at=opened), opened + minutes * MIN)
    assert (on_scene.name, on_scene.target_s, on_scene.state) == ("on_scene", 1800, state)
    assert clocks.state(lead(opened_at=opened), opened + minutes * MIN) == state


def test_a_clock_stops_at_its_milestone_and_when_the_lead_is_closed():
    clocks = Clocks(SlaSettings())
    opened = 1_800_000_000_000
    done = lead(status="closed", opened_at=opened, dispatched_at=opened + 5 * MIN, on_scene_at=opened + 40 * MIN,
                closed_at=opened + 50 * MIN)
    assert [(c.name, c.state) for c in clocks.clocks(done, opened + 999 * MIN)] == [
        ("dispatch", "met"), ("on_scene", "late"), ("resolve", "stopped")]
    assert clocks.state(done, opened + 999 * MIN) == "-"


def test_targets_by_category_district_and_both():
    settings = SlaSettings.model_validate({
        "categories": {"illegal_dumping": {"resolve_min": 240}},
        "districts": {"harbour": {"on_scene_min": 45, "categories": {"illegal_dumping": {"resolve_min": 480}}}}})
    clocks = Clocks(settings)
    assert clocks.targets("street_vending", "old-town").on_scene_s == 1800
    assert clocks.targets("illegal_dumping", "old-town").resolve_s == 240 * 60
    harbour = clocks.targets("illegal_dumping", "harbour")
    assert (harbour.on_scene_s, harbour.resolve_s) == (45 * 60, 480 * 60)


def test_working_hours_skip_nights_weekends_and_holidays():
    clocks = Clocks(SlaSettings.model_validate({"timezone": "Asia/Shanghai", "hours": ["09:00", "17:00"],
                                                "holidays": ["2026-12-01"]}))
    # Friday 16:30 -> Monday 09:30: half an hour on Friday, half an hour on Monday.
    assert clocks.elapsed_s(at("2026-11-27T16:30"), at("2026-11-30T09:30"), True) == 3600
    # Monday 16:00 -> Wednesday 10:00 over a holiday Tuesday: one hour and one hour.
    assert clocks.elapsed_s(at("2026-11-30T16:00"), at("2026-12-02T10:00"), True) == 7200
    assert clocks.elapsed_s(at("2026-11-30T16:00"), at("2026-12-02T10:00"), False) == 42 * 3600


def test_bad_calendars_are_refused_with_their_key_path():
    with pytest.raises(GatewayConfigError, match="desk.sla: .*timezone 'Nowhere/City'"):
        load_gateway_config(None, {"desk.sla.timezone": "Nowhere/City"})
    with pytest.raises(GatewayConfigError, match="desk.sla.categories.x-y"):
        load_gateway_config(None, {"desk.sla.categories": {"x-y": {"resolve_min": 1}}})
    with pytest.raises(GatewayConfigError, match="desk.sla.on_scene_minutes: Extra inputs"):
        load_gateway_config(None, {"desk.sla.on_scene_minutes": 5})
