"""Geometry on lat/lon: distances, polygons, and a grid that finds nearby things fast."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

EARTH_RADIUS_M = 6_371_000.0
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
# Cells are a little larger than the radius, so float rounding never hides a neighbour.
CELL_MARGIN = 1.1
MAX_LATITUDE_FOR_CELLS = 89.0

T = TypeVar("T", bound=Hashable)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def inside_polygon(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Even-odd rule on the lat/lon plane; fine for city-sized polygons away from the antimeridian."""
    inside = False
    count = len(polygon)
    for i in range(count):
        lat_a, lon_a = polygon[i]
        lat_b, lon_b = polygon[(i + 1) % count]
        if (lat_a > lat) != (lat_b > lat):
            crossing_lon = lon_a + (lat - lat_a) * (lon_b - lon_a) / (lat_b - lat_a)
            if lon < crossing_lon:
                inside = not inside
    return inside


class Grid(Generic[T]):
    """Items on a lat/lon grid whose cells are at least ``radius_m`` wide.

    Anything within ``radius_m`` of a point lies in the point's cell or a
    neighbouring one. Rows are latitude bands; a band's longitude step is
    widened for the highest latitude of the band and its neighbours, so the
    neighbour rule holds between bands too.
    """

    def __init__(self, radius_m: float) -> None:
        self.lat_step = radius_m * CELL_MARGIN / METRES_PER_DEGREE
        self._cells: dict[tuple[int, int], list[T]] = {}  # few items each: lists take less memory than sets
        self._where: dict[T, tuple[int, int]] = {}
        self._lon_steps: dict[int, float] = {}

    def _band(self, lat: float) -> int:
        return math.floor(lat / self.lat_step)

    def _lon_step(self, band: int) -> float:
        step = self._lon_steps.get(band)
        if step is None:
            edge = max(abs((band - 1) * self.lat_step), abs((band + 2) * self.lat_step))
            step = self._lon_steps[band] = self.lat_step / math.cos(math.radians(min(edge, MAX_LATITUDE_FOR_CELLS)))
        return step

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        band = self._band(lat)
        return band, math.floor(lon / self._lon_step(band))

    def put(self, item: T, lat: float, lon: float) -> None:
        cell = self._cell(lat, lon)
        old = self._where.get(item)
        if old == cell:
            return
        if old is not None:
            self._discard_from(old, item)
        members = self._cells.get(cell)
        if members is None:
            self._cells[cell] = [item]
        else:
            members.append(item)
        self._where[item] = cell

    def remove(self, item: T) -> None:
        cell = self._where.pop(item, None)
        if cell is not None:
            self._discard_from(cell, item)

    def near(self, lat: float, lon: float) -> set[T]:
        """Items in the cells around the point: a superset of those within the radius."""
        found: set[T] = set()
        cells = self._cells
        own_band = self._band(lat)
        for band in (own_band - 1, own_band, own_band + 1):
            column = math.floor(lon / self._lon_step(band))
            for col in (column - 1, column, column + 1):
                members = cells.get((band, col))
                if members:
                    found.update(members)
        return found

    def __len__(self) -> int:
        return len(self._where)

    def _discard_from(self, cell: tuple[int, int], item: T) -> None:
        members = self._cells[cell]
        members.remove(item)
        if not members:
            del self._cells[cell]
