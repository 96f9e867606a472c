"""A recorded stream with known incidents, replayed through a real gateway on Mosquitto and InfluxDB."""

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

STREAM = Path(__file__).with_name("data") / "incidents_stream.jsonl"
BASE_TS = 1_795_813_200_000


def replayable_stream() -> list[dict]:
    """The recording with its event times moved so that it ends a few minutes ago."""
    lines = [json.loads(line) for line in STREAM.read_text().splitlines()]
    shift = int(time.time() * 1000) - 55 * 60_000 - BASE_TS
    for line in lines:
        if isinstance(line["payload"], dict):
            line["payload"]["ts"] += shift
    return lines


def encoded(line: dict) -> bytes:
    payload = line["payload"]
    return payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()


def test_one_lead_per_incident_with_its_detections_and_none_from_flickers(gateway_process, publish, influx, wait,
                                                                          cli, influx_flags, influx_db_name):
    gateway_process()
    lines = replayable_stream()
    publish([(line["topic"], encoded(line)) for line in lines])

    incidents: dict[str, set[str]] = defaultdict(set)
    flickers = set()
    for line in lines:
        if line["topic"].endswith("/detection"):
            (incidents[line["incident"]] if line["incident"] else flickers).add(line["name"])
    distinct = set().union(*incidents.values(), flickers)
    wait(lambda: len(influx.query('SELECT "n" FROM "detection"')) >= len(distinct))
    time.sleep(0.5)  # anything extra would have arrived by now

    ledger = influx.query('SELECT "id" AS "detection_id", "lead_id" FROM "detection"')
    assert sorted(row["detection_id"] for row in ledger) == sorted(distinct)   # redeliveries added nothing
    members: dict[str, set[str]] = defaultdict(set)
    for row in ledger:
        members[row["lead_id"]].add(row["detection_id"])
    leads = {row["lead_id"]: row for row in influx.query('SELECT * FROM "lead" GROUP BY *')}
    assert len(leads) == len(incidents) == 4
    for name, expected in incidents.items():
        [lead_id] = [lead_id for lead_id, ids in members.items() if ids == expected]
        assert leads[lead_id]["detections"] == len(expected), name
        assert leads[lead_id]["status"] == "open"
    assert {leads[lid]["boxes"] for lid in leads} == {"box-1,box-2", "box-3", "box-1", "box-4"}
    for flicker in flickers:
        assert not any(flicker in members[lead_id] for lead_id in leads)
    assert influx.query('SELECT count("id") FROM "detection"')[0]["count"] == len(distinct)

    listed = cli("boxes", *influx_flags(influx_db_name), "--json")
    assert listed.returncode == 0, listed.stderr
    boxes = {box["box"]: box for box in json.loads(listed.stdout)}
    assert boxes["box-4"]["open_gaps"] == 1 and boxes["box-4"]["missing"] == 1
    assert boxes["box-1"]["online"] is True and boxes["box-2"]["online"] is None
    assert all(boxes[b]["open_gaps"] == 0 for b in ("box-1", "box-2", "box-3"))
    assert boxes["box-3"]["last_seq"] == max(line["payload"]["seq"] for line in lines
                                             if isinstance(line["payload"], dict) and line["payload"]["box"] == "box-3")
    table = cli("boxes", *influx_flags(influx_db_name))
    [row] = [line for line in table.stdout.splitlines() if line.startswith("box-4 ")]
    assert row.split()[1:3] == ["harbour", "?"] and row.split()[-8:-6] == ["1", "1"]   # gaps, missing
