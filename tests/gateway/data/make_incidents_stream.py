"""Writes incidents_stream.jsonl: a stream of box messages with known incidents.

    python tests/gateway/data/make_incidents_stream.py

Each line is one publish: ``{"topic", "payload", "incident"}``, in publish
order. ``incident`` names the incident a detection belongs to (null for
flickers and for non-detections). Event times are epoch ms from BASE_TS; a
replay shifts them to the present. The stream holds repeats across frames,
cameras and boxes, redeliveries, out-of-order arrivals, isolated flickers,
sensor and health messages, and one seq number box-4 never sends.
"""

from __future__ import annotations

import json
from pathlib import Path

BASE_TS = 1_795_813_200_000
MINUTE = 60_000
PLAZA = (48.20850, 16.37310)

# name: (category, box, camera, zone, lat, lon, [minutes], incident)
SIGHTINGS = [
    ("A-n", "street_vending", "box-1", "north", "plaza", *PLAZA, [0, 1, 2, 3, 5], "A"),
    ("A-e", "street_vending", "box-1", "east", "plaza-east", 48.20856, 16.37318, [0.5, 2.5, 4.5], "A"),
    ("A-s", "street_vending", "box-2", "south", "market-corner", 48.20842, 16.37300, [1.5, 3.5], "A"),
    ("B-w", "illegal_dumping", "box-3", "west", "verge", 48.21000, 16.37500, [2, 8, 14, 20], "B"),
    ("C-n", "street_vending", "box-1", "north", "plaza", *PLAZA, [45, 46, 48], "C"),
    ("D-h", "street_vending", "box-4", "quay", "ferry-steps", 48.23000, 16.40000, [10, 11], "D"),
    ("F1", "street_vending", "box-1", "north", "plaza", *PLAZA, [25], None),
    ("F2", "illegal_dumping", "box-1", "north", "plaza", *PLAZA, [1], None),
    ("F3", "street_vending", "box-2", "south", "far-corner", 48.20940, 16.37310, [2], None),
    ("F4", "street_vending", "box-4", "quay", "ferry-steps", 48.23000, 16.40000, [30], None),
]
DISTRICT = {"box-1": "old-town", "box-2": "old-town", "box-3": "old-town", "box-4": "harbour"}
REDELIVERED = ("A-n2", "A-e1", "C-n3")
PUBLISHED_LAST = ("A-n4", "B-w2")          # arrive after later messages of their incident
SKIPPED_SEQ = {"box-4": 3}                 # a message box-4 counted but never sent


def build() -> list[dict]:
    events = []
    for prefix, category, box, camera, zone, lat, lon, minutes, incident in SIGHTINGS:
        for index, minute in enumerate(minutes, start=1):
            name = f"{prefix}{index}" if len(minutes) > 1 else prefix
            events.append((minute, name, category, box, camera, zone, lat, lon, incident,
                           "new" if index == 1 else "end" if index == len(minutes) else "update"))
    for box in DISTRICT:
        for minute in (0.2, 20.2, 40.2):
            events.append((minute, f"health-{box}-{minute}", "health", box, "", "", 0, 0, None, ""))
    events.append((6.1, "sensor-box-3", "sensor", "box-3", "", "", 0, 0, None, ""))
    events.sort(key=lambda e: (e[0], e[1]))

    seqs = {box: 100 for box in DISTRICT}
    lines = []
    for minute, name, category, box, camera, zone, lat, lon, incident, lifecycle in events:
        seqs[box] += 1
        if SKIPPED_SEQ.get(box) == seqs[box] - 100:
            seqs[box] += 1
        ts = BASE_TS + int(minute * MINUTE)
        district = DISTRICT[box]
        common = {"v": 1, "box": box, "district": district, "seq": seqs[box], "ts": ts}
        if category == "health":
            payload = {**common, "uptime_s": 100.0 + minute * 60, "config": "abcdef12",
                       "cameras": {"north": {"state": "running", "fps": 5.0, "detector_ms": 80.0}}}
            topic = f"city/{district}/{box}/health"
        elif category == "sensor":
            payload = {**common, "id": f"s-{box}", "sensor": "bin", "values": {"fill": 0.93},
                       "event": "bin_overflow", "config": "abcdef12"}
            topic = f"city/{district}/{box}/sensor"
        else:
            payload = {**common, "id": name, "camera": camera, "category": category, "event": lifecycle,
                       "label": "person" if category == "street_vending" else "suitcase",
                       "score": round(0.55 + (seqs[box] % 7) * 0.05, 2), "bbox": [0.4, 0.3, 0.5, 0.6],
                       "zone": zone, "track": 7, "dwell_s": 90.0, "lat": lat, "lon": lon,
                       "model": "nanodet-g-416", "config": "abcdef12"}
            topic = f"city/{district}/{box}/detection"
        lines.append({"topic": topic, "payload": payload, "incident": incident, "name": name})

    late = [line for line in lines if line["name"] in PUBLISHED_LAST]
    lines = [line for line in lines if line["name"] not in PUBLISHED_LAST] + late
    lines += [line for line in lines if line["name"] in REDELIVERED]
    lines.insert(0, {"topic": "city/old-town/box-1/status", "payload": "online", "incident": None, "name": "status"})
    return lines


def main() -> None:
    target = Path(__file__).with_name("incidents_stream.jsonl")
    target.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in build()))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
