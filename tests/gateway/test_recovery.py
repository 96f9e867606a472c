"""A restarted gateway rebuilds its state from InfluxDB: same leads, redeliveries change nothing."""

import time

import pytest

from contract import Detection, Health, Kind, Topic
from gateway.desk import casework
from gateway.store.influxdb import InfluxStore
from gateway.transport.incoming import Incoming

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
BASE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="plaza", track=4, dwell_s=60.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")


def detection(name: str, ts: int, seq: int = 1, **changes) -> Incoming:
    det = Detection(**{**BASE, "id": name, "seq": seq, "ts": ts, **changes})
    return Incoming(str(Topic(det.district, det.box, Kind.DETECTION)), det.encode(), 0, 1, time.time())


def health(seq: int) -> Incoming:
    message = Health(box="box-1", district="old-town", seq=seq, ts=NOW - 1000 + seq, uptime_s=1.0, config="abcdef12")
    return Incoming(str(Topic("old-town", "box-1", Kind.HEALTH)), message.encode(), 0, 1, time.time())


def stored(ingest, messages):
    points = ingest.handle(messages)
    assert ingest.write_until_stored(points)
    return points


def of(points, measurement):
    return [p for p in points if p.measurement == measurement]


def leads_in(influx):
    return influx.query('SELECT * FROM "lead" GROUP BY *')


def test_restart_keeps_merging_into_the_same_lead_and_redelivery_changes_nothing(make_ingest, influx):
    first = make_ingest()
    [opened] = of(stored(first, [detection("a1", NOW - 60_000), detection("a2", NOW - 50_000)]), "lead")
    # Crash window: the batch is written, the gateway dies before the acknowledgement.
    stored(first, [detection("a3", NOW - 40_000)])

    second = make_ingest()
    assert second.handle([detection("a3", NOW - 40_000)]) == []      # the broker's redelivery
    assert second.handle([detection("a1", NOW - 60_000)]) == []      # a box re-sending an old one
    points = stored(second, [detection("a4", NOW - 30_000)])
    [entry] = of(points, "detection")
    [lead] = of(points, "lead")
    assert entry.tags["lead_id"] == opened.tags["lead_id"] and entry.fields["n"] == 4
    assert lead.fields["detections"] == 4 and "status" not in lead.fields
    [row] = leads_in(influx)
    assert row["detections"] == 4 and row["status"] == "open"
    ids = [r["id"] for r in influx.query('SELECT * FROM "detection"')]
    assert sorted(ids) == ["a1", "a2", "a3", "a4"]


def test_a_candidate_survives_a_restart_and_opens_with_the_next_detection(make_ingest, influx):
    stored(make_ingest(), [detection("c1", NOW - 60_000)])
    assert leads_in(influx) == []
    points = stored(make_ingest(), [detection("c2", NOW - 59_000, camera="east", zone="plaza-b", lat=48.20855)])
    [lead] = of(points, "lead")
    assert lead.fields["status"] == "open" and lead.fields["detections"] == 2
    assert of(points, "detection")[0].fields["rule"] == "distance"


def test_a_group_reaching_back_before_the_horizon_is_read_back_whole(make_ingest, influx):
    first = make_ingest(dedupe={"horizon_s": 1800})
    stored(first, [detection("h1", NOW - 2_000_000), detection("h2", NOW - 1_500_000),
                   detection("h3", NOW - 1_000_000)])
    second = make_ingest(dedupe={"horizon_s": 1800})
    [lead] = second.book.leads()
    assert lead.detections == 3 and lead.first_seen == NOW - 2_000_000
    [entry] = of(stored(second, [detection("h4", NOW - 500_000)]), "detection")
    assert entry.fields["n"] == 4 and entry.tags["lead_id"] == lead.lead_id


def test_a_late_detection_older_than_the_horizon_meets_its_group_again(make_ingest, influx):
    old = NOW - 5 * 3600_000
    first = make_ingest(dedupe={"horizon_s": 1800})
    [lead] = of(stored(first, [detection("o1", old), detection("o2", old + 60_000)]), "lead")
    second = make_ingest(dedupe={"horizon_s": 1800})
    assert second.book.leads() == []                                  # beyond the horizon
    assert second.handle([detection("o2", old + 60_000)]) == []       # read back: already merged
    [entry] = of(stored(second, [detection("o3", old + 120_000)]), "detection")
    assert entry.tags["lead_id"] == lead.tags["lead_id"] and entry.fields["n"] == 3
    [row] = leads_in(influx)
    assert row["detections"] == 3


def test_a_closed_lead_is_learned_by_the_running_ingest_and_remembered_after_restart(make_ingest, influx):
    ingest = make_ingest(status_refresh_s=0)
    [lead] = of(stored(ingest, [detection("k1", NOW - 60_000), detection("k2", NOW - 59_000)]), "lead")
    lead_id = lead.tags["lead_id"]
    now = int(time.time() * 1000)
    casework.claim(InfluxStore(influx), lead_id, "alice", now)
    casework.close(InfluxStore(influx), lead_id, "rejected", "alice", "vendor moved on", now + 1)
    points = stored(ingest, [detection("k3", NOW - 58_000)])
    [entry] = of(points, "detection")
    assert entry.tags["lead_id"] != lead_id and entry.fields["rule"] == "opened"
    assert ingest.book.get(lead_id).status == "closed"

    restarted = make_ingest()
    assert restarted.book.get(lead_id).status == "closed"
    [reopened] = of(stored(restarted, [detection("k4", NOW - 57_000)]), "lead")
    assert reopened.tags["lead_id"] == entry.tags["lead_id"]
    rows = {row["lead_id"]: row for row in leads_in(influx)}
    assert rows[lead_id]["status"] == "closed" and rows[lead_id]["detections"] == 2
    assert rows[lead_id]["outcome"] == "rejected" and rows[lead_id]["claimed_by"] == "alice"


def test_open_gaps_and_the_last_seq_survive_a_restart(make_ingest, influx):
    first = make_ingest()
    stored(first, [health(1), health(5)])
    second = make_ingest()
    assert second.tracker.boxes["box-1"].last_seq == 5
    [gap] = of(stored(second, [health(3)]), "box_gap")
    assert gap.fields["missing"] == 2 and gap.fields["ranges"] == "2,4"
    assert stored(second, [health(3), health(6)]) and of(second.handle([health(5)]), "box_gap") == []
    [row] = influx.query('SELECT * FROM "box_gap"')
    assert row["status"] == "open" and row["missing"] == 2


def test_a_gateway_serving_some_districts_restores_only_theirs(make_ingest, influx):
    harbour_box = dict(district="harbour", box="box-9", lat=48.1)
    everything = make_ingest()
    stored(everything, [detection("o1", NOW - 60_000), detection("o2", NOW - 50_000),
                        detection("h1", NOW - 60_000, **harbour_box),
                        detection("h2", NOW - 50_000, seq=2, **harbour_box),
                        detection("m1", NOW - 60_000, district="market", box="box-7", lat=48.0)])
    harbour = make_ingest(serve_districts=["harbour", "market"])
    assert sorted(lead.district for lead in harbour.book.groups()) == ["harbour", "market"]
    assert sorted(harbour.tracker.boxes) == ["box-7", "box-9"]
    [lead] = of(stored(harbour, [detection("h3", NOW - 40_000, seq=3, **harbour_box)]), "lead")
    assert lead.fields["detections"] == 3
    old_town = make_ingest(serve_districts=["old-town"])
    assert [lead.district for lead in old_town.book.groups()] == ["old-town"]
    assert sorted(old_town.tracker.boxes) == ["box-1"]


def test_per_category_settings_hold_across_a_restart(make_ingest, influx):
    dumping = dict(category="illegal_dumping", label="suitcase", zone="verge")
    settings = {"categories": {"illegal_dumping": {"min_detections": 1, "merge_gap_s": 3600}}}
    first = make_ingest(dedupe=settings)
    [opened] = of(stored(first, [detection("x1", NOW - 3_000_000, **dumping)]), "lead")
    assert opened.fields["status"] == "open"
    restarted = make_ingest(dedupe=settings)
    [lead] = restarted.book.leads()
    assert lead.status == "open"
    [entry] = of(stored(restarted, [detection("x2", NOW - 1_000_000, seq=2, **dumping)]), "detection")
    assert entry.tags["lead_id"] == opened.tags["lead_id"] and entry.fields["gap_s"] == 2000.0


def test_late_detections_spread_over_years_cost_a_few_reads_per_batch_not_one_each(make_ingest, influx):
    year_ms = 365 * 86400_000
    start = 978_307_200_000   # 2001-01-01
    spread = [start + n * (22 * year_ms // 500) for n in range(500)]
    first = make_ingest()
    stored(first, [detection(f"y{n}", ts) for n, ts in enumerate(spread[::50])])   # some history to meet
    second = make_ingest()
    requests = []
    second.store.client._http.event_hooks["request"].append(lambda request: requests.append(request.url.path))
    points = stored(second, [detection(f"z{n}", ts) for n, ts in enumerate(spread)])
    assert len(of(points, "detection")) == 500
    reads = [path for path in requests if path == "/query"]
    assert len(reads) <= 12, f"{len(reads)} reads for one batch"
    # The old sightings met their groups: those near a stored one joined it.
    joined = [p for p in of(points, "detection") if p.fields["rule"] != "opened"]
    assert joined


def test_a_gap_open_too_long_is_asked_of_its_box_again_and_not_too_often(make_ingest):
    ingest = make_ingest(resend_request_after_s=60, resend_request_every_s=300)
    stored(ingest, [health(1), health(5)])
    [gap] = ingest.tracker.open_gaps()
    assert ingest.backfill_requests(gap.opened_ms + 59_000) == []
    [request] = ingest.backfill_requests(gap.opened_ms + 60_000)
    assert (request.box, request.from_seq, request.to_seq) == ("box-1", 2, 4)
    assert ingest.backfill_requests(gap.opened_ms + 120_000) == []          # asked a minute ago
    stored(ingest, [health(3)])
    requests = ingest.backfill_requests(gap.opened_ms + 360_000)
    assert [(r.from_seq, r.to_seq) for r in requests] == [(2, 2), (4, 4)]
