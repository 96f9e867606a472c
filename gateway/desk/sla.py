"""A lead's clocks: time to dispatch, to on-scene and to resolve, against targets per category and district.

Every clock starts when the lead opened (``opened_at``; leads from before it
was kept start at ``first_seen``) and stops at its milestone
(``dispatched_at``, ``on_scene_at``, ``resolved_at``) or when the lead is
closed. Where ``working_hours`` is set, only working time counts: the
``hours`` of the ``days`` of the week, holidays left out, in ``timezone``.

A running clock is ``ok``, ``due`` (``due_share`` of its target passed) or
``overdue``; a stopped one ``met`` or ``late`` (or ``stopped`` if the lead was
closed before the milestone). Targets resolve like the dedupe settings:
default, then category, then district, then category within district.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config import SlaSettings

CLOCKS = (("dispatch", "dispatched_at"), ("on_scene", "on_scene_at"), ("resolve", "resolved_at"))
RUNNING = ("ok", "due", "overdue")
STATE_RANK = {"overdue": 0, "due": 1, "ok": 2, "late": 3, "met": 4, "stopped": 5}
MAX_DAYS = 400   # working time is counted day by day; beyond this a clock is long overdue anyway


@dataclass(frozen=True, slots=True)
class Targets:
    dispatch_s: float
    on_scene_s: float
    resolve_s: float
    working_hours: bool


@dataclass(frozen=True, slots=True)
class Clock:
    name: str            # dispatch / on_scene / resolve
    target_s: float
    elapsed_s: float
    state: str           # ok / due / overdue / met / late / stopped

    @property
    def left_s(self) -> float:
        return self.target_s - self.elapsed_s


class Clocks:
    def __init__(self, settings: SlaSettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.day_start = time.fromisoformat(settings.hours[0])
        self.day_end = time.fromisoformat(settings.hours[1])
        self.days = set(settings.days)
        self.holidays = {date.fromisoformat(day) for day in settings.holidays}
        self._targets: dict[tuple[str, str], Targets] = {}

    def targets(self, category: str, district: str) -> Targets:
        found = self._targets.get((category, district))
        if found is None:
            s = self.settings
            values: dict[str, Any] = {"dispatch_min": s.dispatch_min, "on_scene_min": s.on_scene_min,
                                      "resolve_min": s.resolve_min, "working_hours": s.working_hours}
            in_district = s.districts.get(district)
            scopes = [s.categories.get(category), in_district, in_district.categories.get(category)
                      if in_district else None]
            for scope in scopes:
                if scope is not None:
                    values.update(scope.model_dump(exclude_none=True, exclude={"categories"}))
            found = Targets(values["dispatch_min"] * 60, values["on_scene_min"] * 60, values["resolve_min"] * 60,
                            values["working_hours"])
            self._targets[(category, district)] = found
        return found

    def clocks(self, lead: dict[str, Any], now_ms: int) -> list[Clock]:
        targets = self.targets(lead.get("category", ""), lead.get("district", ""))
        start = lead.get("opened_at") or lead.get("first_seen") or now_ms
        closed_at = lead.get("closed_at") if lead.get("status") == "closed" else None
        result = []
        for name, field in CLOCKS:
            target = getattr(targets, f"{name}_s")
            reached = lead.get(field)
            end = reached or closed_at or now_ms
            elapsed = self.elapsed_s(start, end, targets.working_hours)
            if reached:
                state = "met" if elapsed <= target else "late"
            elif closed_at:
                state = "stopped"
            elif elapsed >= target:
                state = "overdue"
            elif elapsed >= target * self.settings.due_share:
                state = "due"
            else:
                state = "ok"
            result.append(Clock(name, target, elapsed, state))
        return result

    def state(self, lead: dict[str, Any], now_ms: int) -> str:
        """The lead's worst running clock: ``overdue``, ``due``, ``ok``, or ``-`` when none runs."""
        running = [clock.state for clock in self.clocks(lead, now_ms) if clock.state in RUNNING]
        return min(running, key=STATE_RANK.__getitem__) if running else "-"

    def urgency(self, lead: dict[str, Any], now_ms: int) -> tuple[float, float]:
        """Sort key, most urgent first: the running clock with the least share of its target left."""
        running = [clock for clock in self.clocks(lead, now_ms) if clock.state in RUNNING]
        if not running:
            return (1.0, 0.0)
        return (0.0, min(clock.left_s / clock.target_s for clock in running))

    def elapsed_s(self, start_ms: int, end_ms: int, working_hours: bool) -> float:
        if end_ms <= start_ms:
            return 0.0
        if not working_hours:
            return (end_ms - start_ms) / 1000
        start = datetime.fromtimestamp(start_ms / 1000, timezone.utc)
        end = datetime.fromtimestamp(end_ms / 1000, timezone.utc)
        day = start.astimezone(self.zone).date()
        last = min(end.astimezone(self.zone).date(), day + timedelta(days=MAX_DAYS))
        total = 0.0
        while day <= last:
            if day.isoweekday() in self.days and day not in self.holidays:
                opens = datetime.combine(day, self.day_start, self.zone)
                shuts = datetime.combine(day, self.day_end, self.zone)
                overlap = (min(shuts, end) - max(opens, start)).total_seconds()
                total += max(0.0, overlap)
            day += timedelta(days=1)
        return total
