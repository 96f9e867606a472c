"""`gateway preview`: what other dedupe settings would make of the stored detections, on the real InfluxDB."""

import json
import time

import pytest

from contract import Detection, Kind, Topic
from gateway.config import DedupeSettings
from gateway.dedupe.policies import merge_policies
from gateway.desk.preview import compare, stored_detections
from gateway.store.influxdb import InfluxStore
from gateway.transport.incoming import Incoming

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
BASE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="plaza", track=4, dwell_s=60.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")
ABOUT_20_M_NORTH = 48.2085 + 20 / 111_195


def detection(name: str, minutes_ago: float, **changes) -> Incoming:
    det = Detection(**{**BASE, "id": name, "seq": 1, "ts": NOW - int(minutes_ago * 60_000), **changes})
    return Incoming(str(Topic(det.district, det.box, Kind.DETECTION)), det.encode(), 0, 1, time.time())


def stored_city(make_ingest) -> None:
    """Two vending incidents seen twice each (one of them by two boxes 20 m apart) and two dumped bags seen once."""
    ingest = make_ingest()
    far = 48.25
    messages = [
        detection("v1", 50), detection("v2", 49),
        detection("w1", 40, box="box-2", zone="kiosk", lat=far), detection("w2", 39, box="box-3", zone="corner",
                                                                         lat=far + 20 / 111_195),
        detection("d1", 30, category="illegal_dumping", label="suitcase", zone="verge", lat=48.3),
        detection("d2", 20, category="illegal_dumping", label="suitcase", zone="verge", lat=48.4, district="harbour",
                  box="box-9"),
    ]
    assert ingest.write_until_stored(ingest.handle(messages))


def test_the_preview_counts_leads_under_both_settings(make_ingest, influx):
    stored_city(make_ingest)
    detections = stored_detections(InfluxStore(influx), NOW - 3_600_000, NOW)
    assert [d.id for d in detections] == ["v1", "v2", "w1", "w2", "d1", "d2"]
    candidate = DedupeSettings.model_validate({"merge_radius_m": 10,
                                               "categories": {"illegal_dumping": {"min_detections": 1}}})
    rows = {(d.category, d.district): d for d in compare(detections, merge_policies(DedupeSettings()),
                                                         merge_policies(candidate))}
    vending, dumping_old, dumping_harbour = (rows[("street_vending", "old-town")],
                                             rows[("illegal_dumping", "old-town")],
                                             rows[("illegal_dumping", "harbour")])
    assert (vending.detections, vending.leads_now, vending.leads_then) == (4, 2, 1)     # 20 m is too far at 10 m
    assert (vending.unopened_now, vending.unopened_then) == (0, 2)
    assert (dumping_old.leads_now, dumping_old.leads_then, dumping_old.unopened_now) == (0, 1, 1)
    assert (dumping_harbour.leads_now, dumping_harbour.leads_then) == (0, 1)


def test_the_preview_command(make_ingest, influx_flags, influx_db_name, cli, tmp_path):
    stored_city(make_ingest)
    candidate = tmp_path / "candidate.toml"
    candidate.write_text("[dedupe.categories.illegal_dumping]\nmin_detections = 1\n")
    db = influx_flags(influx_db_name)
    shown = cli("preview", *db, "--with", str(candidate), "--hours", "2", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert sum(row["leads_now"] for row in rows) == 2 and sum(row["leads_then"] for row in rows) == 4
    table = cli("preview", *db, "--with", str(candidate))
    assert table.returncode == 0 and "LEADS NOW" in table.stdout
    assert table.stdout.splitlines()[-2].split() == ["all", "6", "2", "4", "2", "0"]
    candidate.write_text("[dedupe]\nmerge_gap_s = -5\n")
    refused = cli("preview", *db, "--with", str(candidate))
    assert refused.returncode == 2 and "dedupe.merge_gap_s: Input should be greater than 0" in refused.stderr
