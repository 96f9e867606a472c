"""Which street team a lead goes to.

District polygons from the gateway config are checked in order and the first
one holding the lead's place wins; otherwise the box's district decides,
through the ``teams`` map or the default ``{district}-street-team``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import DistrictArea
from gateway.dedupe.geo import inside_polygon


@dataclass(frozen=True, slots=True)
class Route:
    team: str
    source: str          # "area:{name}" or "district:{name}"


class Router:
    def __init__(self, teams: dict[str, str], areas: list[DistrictArea]) -> None:
        self.teams = teams
        self.areas = areas

    def route(self, district: str, lat: float, lon: float) -> Route:
        for area in self.areas:
            if inside_polygon(lat, lon, area.polygon):
                return Route(area.team or self.team_of_district(area.name), f"area:{area.name}")
        return Route(self.team_of_district(district), f"district:{district}")

    def team_of_district(self, district: str) -> str:
        return self.teams.get(district, f"{district}-street-team")
