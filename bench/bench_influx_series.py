"""What the throughput run's series cost InfluxDB: its CPU per detection for the points as the gateway writes
them, and for the same points with tags moved into fields.

    .venv/bin/python bench/bench_influx_series.py [--detections N] [--rounds K]

The gateway's own pipeline (``check`` and ``Pipeline.apply``) turns the N
detections that bench_gateway.py's throughput run drains (8 boxes, an
incident per 4 detections, each incident in a zone of its own) into points
once. Each round then writes them to a fresh InfluxDB (devstack, with a
login) in the gateway's batches of 1,500 detections, in three layouts, in a
different order each round:

    as written     schema v2: a detection point's tags include its ``lead_id`` and ``zone``
    lead field     the detection's ``lead_id`` as a field instead of a tag
    lead+zone      the detection's ``lead_id`` and ``zone`` as fields

and reads InfluxDB's CPU time from /proc. Prints the CPU per detection of
each layout, each one's ratio to "as written" per round, and the medians. The
lead points (a series per lead in every layout) are written unchanged.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_gateway import cpu_seconds, detections  # noqa: E402
from devstack.services import InfluxDB  # noqa: E402
from gateway.dedupe.leads import LeadBook  # noqa: E402
from gateway.dedupe.routing import Router  # noqa: E402
from gateway.dedupe.seqgaps import SeqTracker  # noqa: E402
from gateway.ingest.pipeline import Pipeline, check  # noqa: E402
from gateway.store.evidence import EvidenceStore  # noqa: E402
from gateway.store.influx import InfluxClient  # noqa: E402
from gateway.store.lineprotocol import Point, encode_points  # noqa: E402
from gateway.store.schema import PRECISION  # noqa: E402
from gateway.transport.incoming import Incoming  # noqa: E402

BATCH = 1500
LAYOUTS = {"as written": (), "lead field": ("lead_id",), "lead+zone": ("lead_id", "zone")}


def pipeline_batches(count: int) -> list[list[Point]]:
    """The points the gateway writes for ``count`` detections, one list per batch."""
    now = int(time.time() * 1000)
    incoming = [Incoming(topic, payload, mid, 1, time.time())
                for mid, (topic, payload) in enumerate(detections(count, now - 3_600_000, "series"), 1)]
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(LeadBook(), SeqTracker(), EvidenceStore(Path(tmp)), Router({}, []), Counter())
        return [pipeline.apply([check(m, now) for m in incoming[start:start + BATCH]], now)
                for start in range(0, len(incoming), BATCH)]


def with_fields(point: Point, names: tuple[str, ...]) -> Point:
    """A detection point with the tags ``names`` moved into its fields."""
    if point.measurement != "detection" or not names:
        return point
    tags = {name: value for name, value in point.tags.items() if name not in names}
    moved = {name: point.tags[name] for name in names}
    return Point(point.measurement, tags, {**point.fields, **moved}, point.time)


def influx_cpu_per_detection(bodies: list[bytes], detections_count: int) -> float:
    """Microseconds of InfluxDB CPU per detection to store ``bodies`` in a fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        server = InfluxDB(Path(tmp) / "influxdb")
        server.start()
        try:
            with InfluxClient(server.url, "series_bench", precision=PRECISION, **server.client_login()) as client:
                client.create_database()
                pid = server.pid
                before = cpu_seconds(pid)
                for body in bodies:
                    client.write(body)
                return (cpu_seconds(pid) - before) / detections_count * 1e6
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=60_000, help="Detections per write (default 60000).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the three layouts (default 3).")
    args = parser.parse_args()
    batches = pipeline_batches(args.detections)
    bodies = {name: [encode_points([with_fields(p, moved) for p in batch]) for batch in batches]
              for name, moved in LAYOUTS.items()}
    series = len({(p.measurement, tuple(sorted(p.tags.items()))) for batch in batches for p in batch})
    print(f"{args.detections} detections -> {sum(map(len, batches))} points, {series} series as written, "
          f"{len(batches)} batches", flush=True)
    ratios: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    names = list(LAYOUTS)
    for round_no in range(args.rounds):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        cost = {name: influx_cpu_per_detection(bodies[name], args.detections) for name in order}
        for name in names:
            ratios[name].append(cost[name] / cost["as written"])
        print(f"round {round_no + 1}: " + ", ".join(f"{name} {cost[name]:.1f} us ({ratios[name][-1]:.2f})"
                                                     for name in names), flush=True)
    print("median ratio to as written: " + ", ".join(f"{name} {statistics.median(ratios[name]):.2f}"
                                                      for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
