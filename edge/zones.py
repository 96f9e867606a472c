"""Zones: polygons on a camera's image, judged at the bottom-centre of a box."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import ZoneConfig


@dataclass(frozen=True)
class Zone:
    config: ZoneConfig
    polygon: np.ndarray  # pixel vertices, shape (K, 2)
    _edges: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_edges", polygon_edges(self.polygon))

    @property
    def name(self) -> str:
        return self.config.name

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (N, 2) inside the zone."""
        return edges_contain(self._edges, points)


def polygon_edges(polygon: np.ndarray) -> tuple[np.ndarray, ...]:
    """Start and end coordinates of every edge: xs, ys, next xs, next ys."""
    xs, ys = polygon[:, 0], polygon[:, 1]
    return xs, ys, np.roll(xs, -1), np.roll(ys, -1)


def polygon_contains(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Boolean mask of the points (N, 2) inside a pixel polygon (K, 2), even-odd rule."""
    return edges_contain(polygon_edges(polygon), points)


def edges_contain(edges: tuple[np.ndarray, ...], points: np.ndarray) -> np.ndarray:
    xs, ys, xs2, ys2 = edges
    x, y = points[:, 0:1], points[:, 1:2]
    crosses = (ys > y) != (ys2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at_y = xs + (y - ys) * (xs2 - xs) / (ys2 - ys)
    return ((crosses & (x < x_at_y)).sum(axis=1) % 2) == 1


def zone_for_frame(config: ZoneConfig, width: int, height: int) -> Zone:
    polygon = np.asarray(config.polygon, dtype=np.float64)
    if config.coords == "relative":
        polygon = polygon * np.array([width, height])
    return Zone(config, polygon)
