"""Compare line protocol encoding speed with influxdb-client's serializer.

    python bench/bench_lineprotocol.py [-n POINTS] [--repeat R]

Both encoders get the same typical detection points (5 tags, 6 fields, ms
timestamps) in two variants: floats at full precision, and floats rounded the
way the edge boxes round them (4 decimals), which are cheaper to print.  The
best of R runs is reported for each, as CPU time of this process.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from functools import partial

from influxdb_client import Point as ClientPoint
from influxdb_client import WritePrecision

from gateway.store.lineprotocol import Point, encode_points

CAMERAS = [f"cam-{n:03d}" for n in range(40)]
ZONES = ["market st", "5th & main", "alley,rear", "plaza", "bus stop=12"]
LABELS = ["vendor_cart", "vendor_table", "dumped_bag", "dumped_furniture"]


def typical_points(count: int, seed: int = 1, *, decimals: int | None = None) -> list[Point]:
    """Detection points with 5 tags and 6 fields; floats rounded if ``decimals`` is given."""
    rng = random.Random(seed)

    def number(scale: float) -> float:
        value = rng.random() * scale
        return value if decimals is None else round(value, decimals)

    start_ms = 1_767_225_600_000
    return [
        Point(
            measurement="detection",
            tags={
                "site": "downtown",
                "box": f"edge-{rng.randrange(8)}",
                "camera": rng.choice(CAMERAS),
                "zone": rng.choice(ZONES),
                "label": rng.choice(LABELS),
            },
            fields={
                "confidence": number(1.0),
                "x": number(1.0),
                "y": number(1.0),
                "track_id": rng.randrange(1_000_000),
                "stationary": rng.random() < 0.5,
                "note": rng.choice(["", 'cart near "door"', "two bags"]),
            },
            time=start_ms + index * 37,
        )
        for index in range(count)
    ]


def to_client_points(points: Sequence[Point]) -> list[ClientPoint]:
    """The same points as influxdb-client Point objects."""
    converted = []
    for point in points:
        client_point = ClientPoint(point.measurement).time(point.time, WritePrecision.MS)
        for key, value in point.tags.items():
            client_point.tag(key, value)
        for key, value in point.fields.items():
            client_point.field(key, value)
        converted.append(client_point)
    return converted


def encode_with_client(points: Sequence[ClientPoint]) -> bytes:
    """What influxdb-client's WriteApi does with a list of Points."""
    return "\n".join(point.to_line_protocol(WritePrecision.MS) for point in points).encode()


def best_rate(encode: Callable[[], bytes], count: int, repeat: int) -> float:
    """Points per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        encode()
        best = min(best, time.process_time() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"points: {args.points} per run (5 tags, 6 fields), best of {args.repeat} runs")
    for label, decimals in (("full-precision floats", None), ("floats rounded to 4 decimals", 4)):
        points = typical_points(args.points, decimals=decimals)
        client_points = to_client_points(points)
        ours = best_rate(partial(encode_points, points), args.points, args.repeat)
        theirs = best_rate(partial(encode_with_client, client_points), args.points, args.repeat)
        print(f"{label}:")
        print(f"  gateway.store.lineprotocol: {ours:12,.0f} points/s")
        print(f"  influxdb-client:      {theirs:12,.0f} points/s")
        print(f"  ratio (ours / influxdb-client): {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
