"""One suite for every ``LeadStore``: the in-memory store always, InfluxDB in the integration run.

The first part checks the store's own reads against points written to it; the
second runs the gateway's restore, late reads, casework and preview over the
store, so that what they need of storage is tested without a database too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from contract import Detection, Health, Kind, Topic
from gateway.config import DedupeSettings
from gateway.dedupe.policies import merge_policies
from gateway.dedupe.seqgaps import Gap
from gateway.desk import casework
from gateway.desk.preview import compare, stored_detections
from gateway.ingest.batches import Ingest
from gateway.store.base import BoxSeqState, LeadQuery, LeadStore, StoreError
from gateway.store.influx import InfluxClient
from gateway.store.influxdb import InfluxStore
from gateway.store.lineprotocol import Point
from gateway.store.memory import MemoryStore
from gateway.store.schema import (PRECISION, LeadEvent, box_chain_point, gap_point, lead_event_point, ms_to_ns,
                                  status_point)
from gateway.transport.incoming import Incoming

from .conftest import gateway_config

NOW = int(time.time() * 1000)
BASE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="plaza", track=4, dwell_s=60.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")


@pytest.fixture(params=["memory", pytest.param("influxdb", marks=pytest.mark.integration)])
def store(request) -> Iterator[LeadStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server, db = request.getfixturevalue("influxdb"), request.getfixturevalue("influx_db_name")
    with InfluxStore(InfluxClient(server.url, db, precision=PRECISION, **server.client_login())) as influx:
        influx.create_database()
        yield influx


def detection(name: str, ts: int, seq: int = 1, **changes) -> Incoming:
    det = Detection(**{**BASE, "id": name, "seq": seq, "ts": ts, **changes})
    return Incoming(str(Topic(det.district, det.box, Kind.DETECTION)), det.encode(), 0, 1, time.time())


def health(seq: int, box: str = "box-1", district: str = "old-town", ts: int = NOW - 1000) -> Incoming:
    message = Health(box=box, district=district, seq=seq, ts=ts, uptime_s=1.0, config="abcdef12")
    return Incoming(str(Topic(district, box, Kind.HEALTH)), message.encode(), 0, 1, time.time())


def make_ingest(store: LeadStore, tmp_path, **changes) -> Ingest:
    """A gateway starting on ``store``, as `gateway run` does before it subscribes."""
    ingest = Ingest(gateway_config("http://127.0.0.1:9", "unused", tmp_path / "evidence", **changes), store)
    ingest.restore()
    return ingest


def stored(ingest: Ingest, messages: list[Incoming]) -> list[Point]:
    points = ingest.handle(messages)
    ingest.store.write(points)
    return points


def of(points: list[Point], measurement: str) -> list[Point]:
    return [p for p in points if p.measurement == measurement]


# --------------------------------------------------------------------------- the store's own reads


def test_a_point_written_again_replaces_the_fields_it_names_and_keeps_the_rest(store):
    tags = {"lead_id": "L0123456789a", "category": "street_vending", "district": "old-town", "zone": "plaza"}
    store.write([Point("lead", tags, {"status": "open", "detections": 2, "first_seen": NOW}, ms_to_ns(NOW))])
    store.write([Point("lead", tags, {"status": "claimed", "claimed_by": "alice"}, ms_to_ns(NOW))])
    row = store.lead("L0123456789a")
    assert row["status"] == "claimed" and row["claimed_by"] == "alice" and row["detections"] == 2
    assert row["time"] == ms_to_ns(NOW) and row["zone"] == "plaza"
    assert store.lead("L00000000000") is None


def test_the_desk_reads_pages_of_leads_newest_first_by_status_team_place_and_box(store):
    def lead(n: int, status: str, **fields) -> Point:
        tags = {"lead_id": f"L{n:011x}", "category": "street_vending", "district": fields.pop("district", "old-town"),
                "zone": "plaza"}
        return Point("lead", tags, {"status": status, "team": "t1", "boxes": "box-1,box-2", **fields},
                     ms_to_ns(NOW - 60_000 + n))

    store.write([lead(1, "open"), lead(2, "dispatched", team="t2"), lead(3, "closed", boxes="box-3"),
                 *[lead(n, "closed") for n in range(4, 13)], lead(13, "on_scene", district="harbour")])
    ids = lambda **query: [row["lead_id"][-2:] for row in store.leads_where(LeadQuery(**query))]
    active = ("open", "dispatched", "on_scene")
    assert ids(statuses=active) == ["0d", "02", "01"]
    assert ids(statuses=active, limit=2) == ["0d", "02"]
    # The newest 4 x limit leads hold too few active ones: InfluxDB filters.
    assert ids(statuses=("open", "dispatched"), limit=2) == ["02", "01"]
    assert ids(statuses=active, team="t1", limit=5) == ["0d", "01"]
    assert ids(box="box-3") == ["03"] and ids(district="harbour", limit=50) == ["0d"]
    assert ids(statuses=("closed",), limit=3) == ["0c", "0b", "0a"]
    [row] = store.leads_where(LeadQuery(statuses=("on_scene",), fields=("status",)))
    assert row["status"] == "on_scene" and row["district"] == "harbour"


def test_ledger_rows_are_read_by_event_time_window_and_district(store, tmp_path):
    ingest = make_ingest(store, tmp_path)
    stored(ingest, [detection("a1", NOW - 60_000), detection("a2", NOW - 50_000),
                    detection("h1", NOW - 40_000, district="harbour", box="box-9", lat=48.1)])
    rows = store.ledger_rows(NOW - 55_000, None)
    assert sorted(row["detection_id"] for row in rows) == ["a2", "h1"]
    assert [row["detection_id"] for row in store.ledger_rows(NOW - 70_000, NOW - 45_000)] in (["a1", "a2"],
                                                                                              ["a2", "a1"])
    [harbour] = store.ledger_rows(NOW - 70_000, None, ["harbour"])
    assert harbour["detection_id"] == "h1" and harbour["time"] // 1_000_000 == NOW - 40_000
    [a2] = [row for row in rows if row["detection_id"] == "a2"]
    assert a2["n"] == 2 and a2["rule"] == "same_zone" and a2["box"] == "box-1" and a2["category"] == "street_vending"
    lead_id = a2["lead_id"]
    assert [row["detection_id"] for row in store.ledger(lead_id)] == ["a1", "a2"]
    assert sorted(store.ledgers([lead_id])) == [lead_id] and len(store.ledgers([lead_id])[lead_id]) == 2
    assert store.lead_rows([lead_id, "L00000000000"])[lead_id]["detections"] == 2
    assert [row["lead_id"] for row in store.leads(district="old-town")] == [lead_id]
    assert store.leads(category="illegal_dumping") == []


@pytest.mark.integration
def test_a_login_with_rights_on_its_database_alone_runs_on_it_and_says_what_is_missing_otherwise(
        influxdb, influx_db_name, tmp_path):
    password = influxdb.database_user(influx_db_name, "store-test").read_text().strip()
    with InfluxStore(InfluxClient(influxdb.url, influx_db_name, precision=PRECISION, username="store-test",
                                  password=password)) as store:
        store.create_database()     # InfluxDB refuses it CREATE DATABASE; the database is there
        stored(make_ingest(store, tmp_path), [detection("a1", NOW - 60_000), detection("a2", NOW - 50_000)])
        assert [row["detection_id"] for row in store.ledger_rows(NOW - 70_000, None)] in (["a1", "a2"], ["a2", "a1"])
    missing = f"{influx_db_name}_missing"
    with InfluxStore(InfluxClient(influxdb.url, missing, username="store-test", password=password)) as store:
        with pytest.raises(StoreError, match=rf'CREATE DATABASE "{missing}"; GRANT ALL ON "{missing}" TO'):
            store.create_database()


def test_box_seqs_and_open_gaps(store, tmp_path):
    ingest = make_ingest(store, tmp_path)
    stored(ingest, [health(1), health(5), health(2, box="box-9", district="harbour")])
    assert sorted(store.box_seqs(NOW - 3_600_000), key=lambda b: b.box) == [
        BoxSeqState("box-1", "old-town", 5, 5), BoxSeqState("box-9", "harbour", 2, 2)]  # health 1 and 5 share a ms
    assert store.box_seqs(NOW - 3_600_000, ["harbour"]) == [BoxSeqState("box-9", "harbour", 2, 2)]
    [gap] = store.open_gaps(NOW - 3_600_000)
    assert (gap.box, gap.from_seq, gap.to_seq, gap.missing_ranges) == ("box-1", 2, 4, [(2, 4)])
    assert store.open_gaps(NOW - 3_600_000, ["harbour"]) == []
    closed = Gap("box-1", "old-town", 2, 4, gap.opened_ms, [])
    store.write([gap_point(closed)])
    assert store.open_gaps(NOW - 3_600_000) == []


def test_case_staff_events_are_read_oldest_first(store):
    for at, by in ((NOW - 2000, "alice"), (NOW - 1000, "bob")):
        store.write([lead_event_point("L0123456789a", LeadEvent("claimed", "open", "claimed", by, at))])
    assert [seen.event.by for seen in store.events_since(NOW - 5000)] == ["alice", "bob"]
    assert [seen.event.by for seen in store.events_since(NOW - 1500)] == ["bob"]
    assert [row["by"] for row in store.lead_events("L0123456789a")] == ["alice", "bob"]


def test_the_box_overview(store, tmp_path):
    ingest = make_ingest(store, tmp_path)
    stored(ingest, [health(1, ts=NOW - 9000), health(4, ts=NOW - 8000)])
    store.write([status_point("box-1", "old-town", True, NOW - 7000),
                 status_point("box-1", "old-town", False, NOW - 5000),
                 box_chain_point("box-1", "old-town", 4, 1, 0, 0, 2, "", NOW - 7000),
                 box_chain_point("box-1", "old-town", 5, 1, 1, 1, 3, "seq 3: forged", NOW - 6000)])
    [box] = store.boxes(NOW - 3_600_000)
    assert box == {"box": "box-1", "district": "old-town", "last_seen": NOW - 5000, "online": False, "last_seq": 4,
                   "open_gaps": 1, "missing": 2, "backfilled": 0, "dropped_by_policy": 0, "delivery": None,
                   "evidence_used": None, "evidence_budget": None, "evidence_refused": 0,
                   "chain": "broken", "verified": 5, "unverified": 1, "failed": 1, "chain_breaks": 1,
                   "last_break": "seq 3: forged"}
    assert store.boxes(int(time.time() * 1000) + 3_600_000) == []


# --------------------------------------------------------------------------- the gateway over the store


def test_a_restart_keeps_merging_into_the_same_lead_and_redelivery_changes_nothing(store, tmp_path):
    first = make_ingest(store, tmp_path)
    [opened] = of(stored(first, [detection("a1", NOW - 60_000), detection("a2", NOW - 50_000)]), "lead")
    stored(first, [detection("a3", NOW - 40_000)])
    second = make_ingest(store, tmp_path)
    assert second.handle([detection("a3", NOW - 40_000)]) == []
    [entry] = of(stored(second, [detection("a4", NOW - 30_000)]), "detection")
    assert entry.tags["lead_id"] == opened.tags["lead_id"] and entry.fields["n"] == 4
    [row] = store.leads()
    assert row["detections"] == 4 and row["status"] == "open"


def test_a_late_detection_older_than_the_horizon_meets_its_group_again(store, tmp_path):
    old = NOW - 5 * 3600_000
    first = make_ingest(store, tmp_path, dedupe={"horizon_s": 1800})
    [lead] = of(stored(first, [detection("o1", old), detection("o2", old + 60_000)]), "lead")
    second = make_ingest(store, tmp_path, dedupe={"horizon_s": 1800})
    assert second.book.leads() == []
    assert second.handle([detection("o2", old + 60_000)]) == []
    [entry] = of(stored(second, [detection("o3", old + 120_000)]), "detection")
    assert entry.tags["lead_id"] == lead.tags["lead_id"] and entry.fields["n"] == 3


def test_casework_moves_a_lead_through_its_lifecycle_and_the_running_gateway_learns_it(store, tmp_path):
    ingest = make_ingest(store, tmp_path, status_refresh_s=0)
    [lead] = of(stored(ingest, [detection("k1", NOW - 60_000), detection("k2", NOW - 59_000)]), "lead")
    lead_id = lead.tags["lead_id"]
    now = int(time.time() * 1000)
    dispatcher = casework.Actor("dana", "dispatcher")
    officer = casework.Actor("alice", "officer", "old-town-street-team")
    event = casework.dispatch(store, lead_id, dispatcher, now, officer="alice")
    assert (event.to_status, event.by, event.details) == ("dispatched", "dana", {"team": "old-town-street-team",
                                                                                  "assignee": "alice"})
    with pytest.raises(casework.BadTransition, match="only a lead on scene can be resolved"):
        casework.resolve(store, lead_id, officer, now, "ab" * 32)
    casework.on_scene(store, lead_id, officer, now + 1)
    [still] = of(stored(ingest, [detection("k3", NOW - 58_000)]), "detection")
    assert still.tags["lead_id"] == lead_id   # on scene: the lead still takes detections
    with pytest.raises(casework.BadInput, match="needs a site photo"):
        casework.resolve(store, lead_id, officer, now + 2, None)
    casework.resolve(store, lead_id, officer, now + 2, "ab" * 32, "stall gone")
    [entry] = of(stored(ingest, [detection("k4", NOW - 57_000)]), "detection")
    assert entry.tags["lead_id"] != lead_id and ingest.book.get(lead_id).status == "resolved"
    with pytest.raises(casework.NotAllowed, match="may not close a lead as confirmed"):
        casework.close(store, lead_id, "confirmed", dispatcher, None, now + 3)
    casework.close(store, lead_id, "confirmed", casework.Actor("sam", "supervisor"), "vendor moved on", now + 3)
    with pytest.raises(casework.BadTransition, match="a closed lead cannot change"):
        casework.close(store, lead_id, "rejected", "bob", None, now + 4)
    assert make_ingest(store, tmp_path).book.get(lead_id).status == "closed"
    record = casework.read_lead(store, lead_id)
    assert record.status == "closed" and record.fields["outcome"] == "confirmed"
    assert record.fields["detections"] == 3 and record.fields["claimed_by"] == "alice"
    assert record.fields["site_photo"] == "ab" * 32 and record.fields["closed_at"] == now + 3
    assert [(row["to_status"], row["by"]) for row in casework.read_events(store, lead_id)] == [
        ("dispatched", "dana"), ("on_scene", "alice"), ("resolved", "alice"), ("closed", "sam")]
    listed = casework.list_leads(store, status="closed")
    assert [row["lead_id"] for row in listed] == [lead_id] and listed[0]["boxes"] == ["box-1"]


@pytest.mark.parametrize(("status_before", "outcome", "allowed"), [
    ("open", "rejected", True), ("open", "duplicate", True), ("open", "confirmed", False),
    ("dispatched", "rejected", True), ("on_scene", "duplicate", True), ("on_scene", "confirmed", False),
    ("resolved", "confirmed", True), ("resolved", "rejected", True)])
def test_rejected_and_duplicate_close_from_any_earlier_state_confirmed_only_once_resolved(
        status_before, outcome, allowed):
    store = MemoryStore()
    tags = {"lead_id": "L0123456789a", "category": "street_vending", "district": "old-town", "zone": "plaza"}
    store.write([Point("lead", tags, {"status": status_before, "team": "t1"}, ms_to_ns(NOW))])
    supervisor = casework.Actor("sam", "supervisor")
    if allowed:
        casework.close(store, "L0123456789a", outcome, supervisor, None, NOW)
        assert store.lead("L0123456789a")["outcome"] == outcome
    else:
        with pytest.raises(casework.BadTransition):
            casework.close(store, "L0123456789a", outcome, supervisor, None, NOW)
        assert store.lead("L0123456789a")["status"] == status_before and store.lead_events("L0123456789a") == []


def test_an_officer_sees_and_works_only_the_leads_of_their_team():
    store = MemoryStore()
    tags = {"lead_id": "L0123456789a", "category": "street_vending", "district": "old-town", "zone": "plaza"}
    store.write([Point("lead", tags, {"status": "dispatched", "team": "harbour-team"}, ms_to_ns(NOW))])
    stranger = casework.Actor("olga", "officer", "old-town-street-team")
    with pytest.raises(casework.NotAllowed, match="belongs to team harbour-team"):
        casework.on_scene(store, "L0123456789a", stranger, NOW)
    with pytest.raises(casework.NotAllowed, match="may not dispatch"):
        casework.dispatch(store, "L0123456789a", casework.Actor("olga", "officer", "harbour-team"), NOW)
    with pytest.raises(casework.NotAllowed, match="may not mark a lead on scene"):
        casework.on_scene(store, "L0123456789a", casework.Actor("otto", "operator"), NOW)
    assert store.lead("L0123456789a")["status"] == "dispatched" and store.lead_events("L0123456789a") == []


def test_the_preview_replays_what_is_stored(store, tmp_path):
    ingest = make_ingest(store, tmp_path)
    stored(ingest, [detection("v1", NOW - 50 * 60_000), detection("v2", NOW - 49 * 60_000),
                    detection("d1", NOW - 30 * 60_000, category="illegal_dumping", label="suitcase", zone="verge",
                              lat=48.3)])
    detections = stored_detections(store, NOW - 3_600_000, NOW)
    assert [d.id for d in detections] == ["v1", "v2", "d1"]
    candidate = DedupeSettings.model_validate({"categories": {"illegal_dumping": {"min_detections": 1}}})
    rows = {(d.category, d.district): d for d in compare(detections, merge_policies(DedupeSettings()),
                                                         merge_policies(candidate))}
    assert (rows[("street_vending", "old-town")].leads_now, rows[("street_vending", "old-town")].leads_then) == (1, 1)
    assert (rows[("illegal_dumping", "old-town")].leads_now, rows[("illegal_dumping", "old-town")].leads_then) == (0, 1)


def test_merge_and_split_are_followed_by_the_running_gateway_and_after_a_restart(store, tmp_path):
    ingest = make_ingest(store, tmp_path, status_refresh_s=0)
    north = of(stored(ingest, [detection("m1", NOW - 60_000), detection("m2", NOW - 59_000)]), "lead")[0]
    south = of(stored(ingest, [detection("m3", NOW - 60_000, box="box-2", camera="south", zone="corner",
                                         lat=48.20895), detection("m4", NOW - 59_000, box="box-2", camera="south",
                                                                  zone="corner", lat=48.20895)]), "lead")[0]
    north_id, south_id = north.tags["lead_id"], south.tags["lead_id"]
    dana = casework.Actor("dana", "dispatcher")
    casework.merge(store, south_id, north_id, dana, NOW)
    with pytest.raises(casework.BadTransition, match="only open, dispatched or on-scene leads can be merged"):
        casework.merge(store, south_id, north_id, dana, NOW)
    assert [row["detection_id"] for row in store.ledger(north_id)] == ["m1", "m2", "m3", "m4"]
    [joined] = of(stored(ingest, [detection("m5", NOW - 58_000, box="box-2", camera="south", zone="corner",
                                            lat=48.20895)]), "detection")
    assert joined.tags["lead_id"] == north_id and joined.fields["n"] == 5
    casework.split(store, north_id, "m2", dana, NOW + 1)
    [new] = [row for row in store.leads() if row.get("split_from") == north_id]
    record = casework.read_lead(store, north_id)
    assert [row["detection_id"] for row in casework.members(store, record)] == ["m1", "m3", "m4", "m5"]
    assert record.fields["detections"] == 4 and new["detections"] == 1

    restarted = make_ingest(store, tmp_path)
    assert restarted.book.get(south_id) is None   # merged away: its detections live on in the other lead
    assert sorted(e.detection_id for e in restarted.book.get(north_id).ledger) == ["m1", "m3", "m4", "m5"]
    assert [e.detection_id for e in restarted.book.get(new["lead_id"]).ledger] == ["m2"]
    assert restarted.handle([detection("m2", NOW - 59_000), detection("m3", NOW - 60_000)]) == []
