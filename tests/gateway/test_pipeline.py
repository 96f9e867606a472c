"""One batch through check and apply, in memory: gaps, dedupe, routing, evidence, dead letters."""

import hashlib
import json
import time
from collections import Counter

from contract import Detection, Health, Kind, SensorReading, Topic
from gateway.dedupe.leads import LeadBook
from gateway.dedupe.routing import Router
from gateway.dedupe.seqgaps import SeqTracker
from gateway.ingest.pipeline import Pipeline, check
from gateway.store.evidence import EvidenceStore
from gateway.store.lineprotocol import encode_point
from gateway.transport.incoming import Incoming

NOW = int(time.time() * 1000)
T0 = NOW - 600_000
BASE = dict(box="box-1", district="old-town", camera="north", category="illegal_dumping", label="suitcase",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="hotspot", track=4, dwell_s=120.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")
JPEG_A = b"\xff\xd8\xff\xe0" + b"picture a" * 10
JPEG_B = b"\xff\xd8\xff\xe0" + b"picture b" * 10


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def detection(n: int, **changes) -> Incoming:
    det = Detection(**{**BASE, "id": f"d{n}", "seq": n, "ts": T0 + n * 1000, **changes})
    return Incoming(str(Topic(det.district, det.box, Kind.DETECTION)), det.encode(), n, 1, time.time())


def health(seq: int, box: str = "box-1") -> Incoming:
    message = Health(box=box, district="old-town", seq=seq, ts=T0, uptime_s=5.0, config="abcdef12")
    return Incoming(str(Topic("old-town", box, Kind.HEALTH)), message.encode(), seq, 1, time.time())


def evidence(detection_id: str, jpeg: bytes) -> Incoming:
    return Incoming(str(Topic("old-town", "box-1", Kind.EVIDENCE, detection_id)), jpeg, 0, 1, time.time())


def detection_json(n: int, **changes) -> Incoming:
    """A detection as bytes, with changes the contract model itself would refuse to build."""
    message = detection(n)
    return raw(message.topic, json.dumps({**json.loads(message.payload), **changes}).encode())


def raw(topic: str, payload: bytes) -> Incoming:
    return Incoming(topic, payload, 0, 1, time.time())


class Harness:
    def __init__(self, root, router: Router | None = None) -> None:
        self.book = LeadBook()
        self.tracker = SeqTracker()
        self.store = EvidenceStore(root)
        self.stats = Counter()
        self.pipeline = Pipeline(self.book, self.tracker, self.store, router or Router({}, []), self.stats)

    def run(self, *messages: Incoming):
        points = self.pipeline.apply([check(m, NOW) for m in messages], NOW)
        for point in points:
            encode_point(point)
        return points


def of(points, measurement):
    return [p for p in points if p.measurement == measurement]


def test_two_detections_open_a_routed_lead_and_a_repeat_changes_nothing(tmp_path):
    h = Harness(tmp_path, Router({"old-town": "team-ot"}, []))
    points = h.run(detection(1), detection(2))
    [lead] = of(points, "lead")
    assert lead.fields["status"] == "open" and lead.fields["team"] == "team-ot"
    assert lead.fields["route"] == "district:old-town" and lead.fields["detections"] == 2
    assert [p.fields["n"] for p in of(points, "detection")] == [1, 2]
    assert h.run(detection(2)) == []
    # A later merge rewrites the lead without its status: status belongs to case staff now.
    [update] = of(h.run(detection(3)), "lead")
    assert "status" not in update.fields and update.fields["detections"] == 3
    assert update.time == lead.time and update.tags == lead.tags


def test_the_leads_a_batch_opens_are_logged_in_one_line(tmp_path, caplog):
    h = Harness(tmp_path, Router({"old-town": "team-ot"}, []))
    far = dict(zone="market", lat=48.3085, lon=16.4731)
    with caplog.at_level("INFO", logger="gateway.ingest.pipeline"):
        points = h.run(detection(1), detection(2), detection(3, **far), detection(4, **far))
    lead_ids = sorted(p.tags["lead_id"] for p in of(points, "lead"))
    opened = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lead.opened")]
    assert len(lead_ids) == 2 and len(opened) == 1
    assert opened[0].startswith("lead.opened count=2 lead=")
    assert all(f"lead={lead_id} category=illegal_dumping district=old-town" in opened[0] for lead_id in lead_ids)
    assert "zone=hotspot" in opened[0] and "zone=market" in opened[0] and "team=team-ot" in opened[0]


def test_a_closed_lead_takes_no_more_detections(tmp_path):
    h = Harness(tmp_path)
    [lead] = of(h.run(detection(1), detection(2)), "lead")
    h.book.set_status(lead.tags["lead_id"], "closed", outcome="confirmed")
    points = h.run(detection(3))
    assert of(points, "lead") == []
    [entry] = of(points, "detection")
    assert entry.tags["lead_id"] != lead.tags["lead_id"] and entry.fields["rule"] == "opened"


def test_seq_gaps_are_recorded_and_closed(tmp_path):
    h = Harness(tmp_path)
    h.run(health(1))
    [gap] = of(h.run(health(4)), "box_gap")
    assert gap.fields | {} == {"from_seq": 2, "to_seq": 3, "missing": 2, "status": "open", "ranges": "2-3",
                               "policy": 0, "backfilled": 0}
    [narrowed] = of(h.run(detection(2)), "box_gap")
    assert narrowed.fields["missing"] == 1 and narrowed.time == gap.time
    [closed] = of(h.run(health(3)), "box_gap")
    assert closed.fields["status"] == "closed" and closed.fields["missing"] == 0
    assert closed.fields["backfilled"] == 2 and closed.fields["policy"] == 0


def test_evidence_after_the_detection_becomes_the_leads_picture(tmp_path):
    h = Harness(tmp_path)
    h.run(detection(1, evidence_sha256=sha(JPEG_A)), detection(2))
    points = h.run(evidence("d1", JPEG_A))
    [lead] = of(points, "lead")
    assert lead.fields["evidence"] == sha(JPEG_A) and h.store.has(sha(JPEG_A))
    assert of(points, "evidence")[0].fields["detection_id"] == "d1"


def test_evidence_before_the_detection_is_matched_when_it_arrives(tmp_path):
    h = Harness(tmp_path)
    assert of(h.run(evidence("d2", JPEG_B)), "rejected") == []
    [lead] = of(h.run(detection(1), detection(2, evidence_sha256=sha(JPEG_B), score=0.9)), "lead")
    assert lead.fields["evidence"] == sha(JPEG_B)


def test_a_picture_that_does_not_match_its_detection_is_dead_lettered(tmp_path):
    h = Harness(tmp_path)
    h.run(detection(1, evidence_sha256=sha(JPEG_A)))
    [rejected] = of(h.run(evidence("d1", JPEG_B)), "rejected")
    assert sha(JPEG_B) in rejected.fields["reason"] and sha(JPEG_A) in rejected.fields["reason"]
    assert not h.store.has(sha(JPEG_B))
    # Arriving first, the wrong picture is found out when the detection comes.
    h.run(evidence("d7", JPEG_B))
    [late] = of(h.run(detection(7, evidence_sha256=sha(JPEG_A))), "rejected")
    assert "d7" in late.fields["reason"]


def test_what_cannot_be_stored_is_dead_lettered_before_it_touches_the_state(tmp_path):
    h = Harness(tmp_path)
    points = h.run(detection_json(1, label="ends with a backslash\\"), detection_json(2, seq=2**63))
    rejected = of(points, "rejected")
    assert len(rejected) == 2 and of(points, "detection") == []
    assert rejected[0].fields["reason"].startswith("label:") and rejected[1].fields["reason"].startswith("seq:")
    assert not h.book.seen("d1")
    # A dead letter is kept, so its seq is accounted for (the box need not send it again); a seq that is no
    # counter is not.
    assert h.tracker.boxes["box-1"].last_seq == 1 and h.tracker.confirmation("box-1") == (1, [])


def test_sensor_readings_may_not_shadow_gateway_fields(tmp_path):
    h = Harness(tmp_path)
    reading = SensorReading(id="s1", box="box-1", district="old-town", seq=1, ts=T0, sensor="bin",
                            values={"pm10": 1.0}, config="abcdef12")
    shadowing = reading.encode().replace(b'"pm10"', b'"seq"')
    [rejected] = h.run(raw("city/old-town/box-1/sensor", shadowing))
    assert rejected.measurement == "rejected" and "value names seq are reserved" in rejected.fields["reason"]


def test_dead_letters_keep_bad_topics_out_of_the_tag_set(tmp_path):
    h = Harness(tmp_path)
    [point] = h.run(raw("city/old-town/evil\nrejected,box=x v=1/detection", b"\x00{"))
    assert point.tags == {"box": ""} and encode_point(point).startswith('rejected reason="')
    assert "\\x00" in point.fields["payload"]


def test_health_with_serial_ports_position_and_drops_becomes_flat_fields(tmp_path):
    from contract import Position, SerialPortHealth

    h = Harness(tmp_path)
    message = Health(box="box-1", district="old-town", seq=1, ts=T0, uptime_s=5.0, config="abcdef12",
                     spool_dropped={"telemetry": 3},
                     serial=[SerialPortHealth(port="/dev/ttyUSB0", state="open", sensors=["bin-14"],
                                              counters={"modbus_timeouts": 2})],
                     position=Position(lat=48.2, lon=16.3, ts=T0))
    [point] = h.run(raw(str(Topic("old-town", "box-1", Kind.HEALTH)), message.encode()))
    assert point.measurement == "box_health"
    assert point.fields["serial.bin-14.state"] == "open" and point.fields["serial.bin-14.counter.modbus_timeouts"] == 2
    assert point.fields["spool_dropped.telemetry"] == 3 and point.fields["lat"] == 48.2


def test_a_down_camera_keeps_its_reason_in_the_health_point(tmp_path):
    from contract import CameraHealth

    h = Harness(tmp_path)
    reason = "zone 'kiosk': point 1 (900, 40) lies outside the 768x576 frame"
    message = Health(box="box-1", district="old-town", seq=1, ts=T0, uptime_s=5.0, config="abcdef12",
                     cameras={"north": CameraHealth(state="running", fps=5.0),
                              "south": CameraHealth(state="down", fps=0.0, reason=reason)})
    [point] = h.run(raw(str(Topic("old-town", "box-1", Kind.HEALTH)), message.encode()))
    assert point.fields["camera.south.state"] == "down" and point.fields["camera.south.reason"] == reason
    assert "camera.north.reason" not in point.fields


def health_with(seq: int, **fields) -> Incoming:
    message = Health(box="box-1", district="old-town", seq=seq, ts=T0 + seq, uptime_s=5.0, config="abcdef12",
                     **fields)
    return Incoming(str(Topic("old-town", "box-1", Kind.HEALTH)), message.encode(), seq, 1, time.time())


def test_a_lost_tail_is_a_gap_and_policy_drops_close_gaps_without_holding_confirmation_back(tmp_path):
    from contract import DroppedSeqs

    h = Harness(tmp_path)
    h.run(detection(1), detection(2))
    # Seqs 3-9 went missing; the box had assigned up to 12 when it built health 13... as said by a later one.
    [gap] = of(h.run(health_with(13, last_seq=12)), "box_gap")
    assert (gap.fields["from_seq"], gap.fields["to_seq"], gap.fields["missing"]) == (3, 12, 10)
    assert h.tracker.confirmation("box-1") == (2, [(13, 13)])
    # The box announces 3-6 (telemetry) and 10-12 (kept) dropped by its size policy: closed, not missing.
    [gap] = of(h.run(health_with(14, dropped_seqs=[DroppedSeqs(kind="telemetry", from_seq=3, to_seq=6),
                                                  DroppedSeqs(kind="keep", from_seq=10, to_seq=12)])), "box_gap")
    assert gap.fields["missing"] == 3 and gap.fields["ranges"] == "7-9" and gap.fields["policy"] == 7
    [closed] = of(h.run(detection(7), detection(8), detection(9)), "box_gap")
    assert closed.fields["status"] == "closed" and closed.fields["backfilled"] == 3 and closed.fields["policy"] == 7
    assert h.tracker.confirmation("box-1") == (14, [])


def test_after_the_broker_lost_its_sessions_a_box_is_offline_until_heard_again(tmp_path):
    h = Harness(tmp_path)
    h.run(health(1), health(1, box="box-2"))
    h.pipeline.session_lost_ms = NOW - 10
    statuses = of(h.run(health(2)), "box_status")
    assert sorted((p.tags["box"], p.fields["online"]) for p in statuses) == [
        ("box-1", False), ("box-1", True), ("box-2", False)]
    assert of(h.run(health(3)), "box_status") == []                 # heard once is enough
    replayed = Incoming(str(Topic("old-town", "box-2", Kind.STATUS)), b"online", 0, 1, time.time(), True)
    assert of(h.run(replayed), "box_status") == []                  # a retained "online" says nothing of now
    live = Incoming(str(Topic("old-town", "box-2", Kind.STATUS)), b"online", 0, 1, time.time())
    assert [p.fields["online"] for p in of(h.run(live), "box_status")] == [True]
