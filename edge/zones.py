"""Zones: polygons on a camera's image, judged at the bottom-centre of a box.

A pixel zone (``coords = "pixel"``) must lie in the frame it is used on:
``zone_for_frame`` raises ``ZoneOutsideFrame`` at a camera's first frame
otherwise, and ``frame_problems`` checks zones against a frame size before
any frame is seen (``edge validate --frame-size``, live config changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import CameraConfig, Point, ZoneConfig


@dataclass(frozen=True)
class Zone:
    config: ZoneConfig
    polygon: np.ndarray  # pixel vertices, shape (K, 2)
    frame_size: tuple[int, int] | None = None      # width, height of the frames it is used on, when known
    _edges: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        outline = self.polygon if self.frame_size is None else _past_the_picture_edge(self.polygon, *self.frame_size)
        object.__setattr__(self, "_edges", polygon_edges(outline))

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


class ZoneOutsideFrame(ValueError):
    """A pixel zone has vertices outside the frame it is used on.

    Carries what the box logs and reports: the zone, the camera when the
    caller knows it, the offending vertices as ``(index, (x, y))`` and the
    frame size.
    """

    def __init__(self, zone: str, points: list[tuple[int, Point]], width: int, height: int,
                 camera: str | None = None) -> None:
        self.zone = zone
        self.points = points
        self.width = width
        self.height = height
        self.camera = camera
        where = f"camera {camera!r} zone {zone!r}" if camera else f"zone {zone!r}"
        super().__init__(f"{where}: {self.outside}")

    def for_camera(self, camera: str) -> ZoneOutsideFrame:
        """The same error, naming the camera the zone belongs to."""
        return ZoneOutsideFrame(self.zone, self.points, self.width, self.height, camera)

    @property
    def outside(self) -> str:
        """``point 3 (900, 40) lies outside the 768x576 frame``, naming every offending point."""
        listed = ", ".join(f"{i} ({x:g}, {y:g})" for i, (x, y) in self.points)
        if len(self.points) == 1:
            return f"point {listed} lies outside the {self.width}x{self.height} frame"
        return f"points {listed} lie outside the {self.width}x{self.height} frame"


def points_outside(polygon: list[Point], width: int, height: int) -> list[tuple[int, Point]]:
    """The vertices, with their index, that lie outside [0, width] x [0, height].

    The borders belong to the frame, as 0 and 1 do for relative polygons
    (a relative 1.0 becomes ``width``).
    """
    return [(i, (x, y)) for i, (x, y) in enumerate(polygon) if not (0 <= x <= width and 0 <= y <= height)]


def check_in_frame(config: ZoneConfig, width: int, height: int) -> None:
    """Raise ZoneOutsideFrame if a pixel zone has any vertex outside a width x height frame.

    Any vertex, not only a zone wholly outside: a zone that sticks out was
    drawn on a picture of another size (a 1920x1080 still for a 1280x720
    stream, say), so even its part inside the frame is not the area meant.
    Relative zones always fit; their points were checked to lie in 0..1.
    """
    if config.coords == "pixel":
        outside = points_outside(config.polygon, width, height)
        if outside:
            raise ZoneOutsideFrame(config.name, outside, width, height)


def frame_problems(cameras: list[CameraConfig], sizes: dict[str, tuple[int, int]]) -> list[str]:
    """``cameras.I.zones.J.polygon: point K (x, y) lies outside the WxH frame`` for each zone that does not fit.

    ``sizes`` maps camera names to their frame size (width, height); cameras
    without one are not checked.
    """
    problems = []
    for i, camera in enumerate(cameras):
        size = sizes.get(camera.name)
        for j, zone in enumerate(camera.zones if size else []):
            try:
                check_in_frame(zone, *size)
            except ZoneOutsideFrame as exc:
                problems.append(f"cameras.{i}.zones.{j}.polygon: {exc.outside}")
    return problems


def zone_for_frame(config: ZoneConfig, width: int, height: int) -> Zone:
    """The zone in pixels of a width x height frame; a pixel zone that does not fit raises ZoneOutsideFrame."""
    check_in_frame(config, width, height)
    polygon = np.asarray(config.polygon, dtype=np.float64)
    if config.coords == "relative":
        polygon = polygon * np.array([width, height])
    return Zone(config, polygon, (width, height))


def _past_the_picture_edge(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Vertices on (or past) the picture's edge moved one pixel beyond it.

    A box cut off by the bottom of the picture has its foot point on the edge
    itself; a zone drawn to the edge is meant to hold it.
    """
    polygon = polygon.copy()
    for axis, size in ((0, width), (1, height)):
        polygon[polygon[:, axis] <= 0, axis] = -1.0
        polygon[polygon[:, axis] >= size, axis] = size + 1.0
    return polygon
