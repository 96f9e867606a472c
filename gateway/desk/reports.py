"""What a city reports each month: per team, district or category, how leads went.

For the leads whose first detection falls in [since, until): how many were
opened, dispatched within target, on scene within target, resolved; how many
closed as confirmed, rejected or duplicate, and the confirmed share of the
judged ones (confirmed / (confirmed + rejected): the detector's precision as
staff found it); median and 90th percentile of the time to on-scene and to
resolve, in minutes (counted as the clocks count them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from gateway.desk.casework import lead_row
from gateway.desk.sla import Clocks
from gateway.store.base import LeadQuery, LeadStore

GROUPS = ("team", "district", "category")


@dataclass(frozen=True)
class ReportRow:
    group: str
    opened: int
    dispatched_in_time: int
    on_scene_in_time: int
    resolved: int
    confirmed: int
    rejected: int
    duplicate: int
    confirmed_share: float | None
    on_scene_median_min: float | None
    on_scene_p90_min: float | None
    resolve_median_min: float | None
    resolve_p90_min: float | None


COLUMNS = [field.name for field in fields(ReportRow)]


def report(store: LeadStore, clocks: Clocks, by: str, since_ms: int, until_ms: int, now_ms: int) -> list[ReportRow]:
    if by not in GROUPS:
        raise ValueError(f"reports group by one of {', '.join(GROUPS)}, not {by!r}")
    groups: dict[str, list[dict]] = {}
    for row in store.leads_where(LeadQuery(since_ms=since_ms, until_ms=until_ms)):
        lead = lead_row(row)
        groups.setdefault(lead.get(by) or "(none)", []).append(lead)
    return [_row(name, leads, clocks, now_ms) for name, leads in sorted(groups.items())]


def _row(name: str, leads: list[dict], clocks: Clocks, now_ms: int) -> ReportRow:
    states = {lead["lead_id"]: {c.name: c for c in clocks.clocks(lead, now_ms)} for lead in leads}
    outcomes = [lead.get("outcome") for lead in leads if lead["status"] == "closed"]
    confirmed, rejected = outcomes.count("confirmed"), outcomes.count("rejected")
    on_scene = [states[lead["lead_id"]]["on_scene"].elapsed_s / 60 for lead in leads if lead.get("on_scene_at")]
    resolve = [states[lead["lead_id"]]["resolve"].elapsed_s / 60 for lead in leads if lead.get("resolved_at")]
    return ReportRow(
        group=name, opened=len(leads),
        dispatched_in_time=sum(states[lead["lead_id"]]["dispatch"].state == "met" for lead in leads),
        on_scene_in_time=sum(states[lead["lead_id"]]["on_scene"].state == "met" for lead in leads),
        resolved=sum(1 for lead in leads if lead.get("resolved_at")),
        confirmed=confirmed, rejected=rejected, duplicate=outcomes.count("duplicate"),
        confirmed_share=round(confirmed / (confirmed + rejected), 3) if confirmed + rejected else None,
        on_scene_median_min=percentile(on_scene, 50), on_scene_p90_min=percentile(on_scene, 90),
        resolve_median_min=percentile(resolve, 50), resolve_p90_min=percentile(resolve, 90))


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile, rounded to 0.1; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)], 1)
