"""What the lead page draws itself: the map, from the config alone (no tiles), and the evidence crop.

The map is an SVG in an equirectangular projection around the lead (fine at
city scale): district polygons from ``[[districts]]``, box positions from
``[[desk.boxes]]``, the lead and the detections that made it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig

WIDTH, HEIGHT, MARGIN = 480, 320, 24
COLOURS = ("#dbeafe", "#dcfce7", "#fef9c3", "#fce7f3", "#ede9fe", "#ffedd5")


@dataclass(frozen=True)
class Shape:
    kind: str        # district / box / detection / lead
    label: str
    points: str = ""  # SVG points for polygons
    x: float = 0.0
    y: float = 0.0
    fill: str = ""


def lead_map(config: GatewayConfig, lead: dict[str, Any], ledger: list[dict[str, Any]]) -> dict[str, Any]:
    """Shapes in SVG coordinates, for the template: districts, boxes, detections and the lead on top."""
    spots = [(row["lat"], row["lon"]) for row in ledger if row.get("lat") is not None]
    lead_spot = (lead.get("lat"), lead.get("lon"))
    every = [*spots, *([lead_spot] if None not in lead_spot else [])]
    boxes_used = {row.get("box") for row in ledger}
    boxes = [box for box in config.desk.boxes if box.name in boxes_used or not boxes_used]
    districts = [area for area in config.districts if area.name == lead.get("district")] or list(config.districts)
    every += [(box.lat, box.lon) for box in boxes]
    every += [corner for area in districts for corner in area.polygon]
    if not every:
        return {"width": WIDTH, "height": HEIGHT, "shapes": [], "scale_m": 0, "scale_px": 0}
    lats, lons = [p[0] for p in every], [p[1] for p in every]
    mid_lat = math.radians((min(lats) + max(lats)) / 2)
    span_x = max((max(lons) - min(lons)) * math.cos(mid_lat), 1e-4)
    span_y = max(max(lats) - min(lats), 1e-4)
    scale = min((WIDTH - 2 * MARGIN) / span_x, (HEIGHT - 2 * MARGIN) / span_y)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x = MARGIN + (lon - min(lons)) * math.cos(mid_lat) * scale
        y = HEIGHT - MARGIN - (lat - min(lats)) * scale
        return round(x, 1), round(y, 1)

    shapes = []
    for index, area in enumerate(districts):
        corners = [xy(lat, lon) for lat, lon in area.polygon]
        cx, cy = sum(c[0] for c in corners) / len(corners), sum(c[1] for c in corners) / len(corners)
        shapes.append(Shape("district", area.name, " ".join(f"{x},{y}" for x, y in corners), cx, cy,
                            COLOURS[index % len(COLOURS)]))
    for box in boxes:
        shapes.append(Shape("box", box.name, "", *xy(box.lat, box.lon)))
    for lat, lon in spots:
        shapes.append(Shape("detection", "", "", *xy(lat, lon)))
    if None not in lead_spot:
        shapes.append(Shape("lead", lead.get("lead_id", ""), "", *xy(*lead_spot)))
    metres_per_px = 111_320 / scale
    scale_m = _round_metres(metres_per_px * 100)
    return {"width": WIDTH, "height": HEIGHT, "shapes": shapes, "scale_m": scale_m,
            "scale_px": round(scale_m / metres_per_px, 1)}


def _round_metres(metres: float) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if step >= metres * 0.6:
            return step
    return 100000


def picture_size(path: Path) -> tuple[int, int] | None:
    """Width and height of a JPEG (its SOF segment) or PNG (IHDR), or None if unreadable."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
            if head.startswith(b"\x89PNG") and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if not head.startswith(b"\xff\xd8"):
                return None
            f.seek(2)
            while True:
                marker = f.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    return None
                kind, length = marker[1], struct.unpack(">H", marker[2:4])[0]
                if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">xHH", f.read(5))
                    return width, height
                f.seek(length - 2, 1)
    except OSError:
        return None
