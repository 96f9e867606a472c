"""Evidence on the gateway's disk is bounded: pictures only for detections that exist or come soon, a budget per
box and in total, eviction of closed leads' pictures past retention only, and refusals that lose nothing."""

import hashlib
import time
from collections import Counter

from contract import Detection, Kind, Topic
from gateway.cli import format_boxes_table
from gateway.dedupe.leads import LeadBook
from gateway.dedupe.routing import Router
from gateway.dedupe.seqgaps import SeqTracker
from gateway.ingest.pipeline import Pipeline, check
from gateway.store.evidence import EvidenceBudget, EvidenceStore
from gateway.transport.incoming import Incoming

NOW = int(time.time() * 1000)
MB = 1024 * 1024
BASE = dict(district="old-town", camera="north", category="illegal_dumping", label="suitcase", score=0.7,
            bbox=(0.1, 0.5, 0.2, 0.7), zone="hotspot", track=4, dwell_s=120.0, lat=48.2085, lon=16.3731,
            model="nanodet-g-416", config="abcdef12")


def picture(n: int, size: int = 4 * MB - 64) -> bytes:
    return b"\xff\xd8\xff\xe0" + n.to_bytes(8, "big") + b"\0" * (size - 12)


def evidence(detection_id: str, jpeg: bytes, box: str = "box-1") -> Incoming:
    return Incoming(str(Topic("old-town", box, Kind.EVIDENCE, detection_id)), jpeg, 0, 1, time.time())


def detection(n: int, jpeg: bytes, box: str = "box-1") -> Incoming:
    det = Detection(**BASE, box=box, id=f"{box}-d{n}", seq=n, ts=NOW - 60_000 + n,
                    evidence_sha256=hashlib.sha256(jpeg).hexdigest())
    return Incoming(str(Topic("old-town", box, Kind.DETECTION)), det.encode(), n, 1, time.time())


def pipeline(root, budget: EvidenceBudget | None = None) -> Pipeline:
    store = EvidenceStore(root, budget) if budget else EvidenceStore(root)
    return Pipeline(LeadBook(), SeqTracker(), store, Router({}, []), Counter())


def run(p: Pipeline, messages, now_ms: int = NOW):
    return p.apply([check(m, NOW) for m in messages], now_ms)


def on_disk(root) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.jpg"))


def test_pictures_for_detections_that_never_come_are_deleted_and_dead_lettered(tmp_path):
    p = pipeline(tmp_path)
    run(p, [evidence(f"ghost-{n}", picture(n)) for n in range(25)])
    kept = [evidence("box-1-d1", picture(99))]
    run(p, kept + [detection(1, picture(99))])   # a picture whose detection comes is kept
    points = run(p, [], NOW + 901_000)           # past the 900 s wait
    letters = [pt for pt in points if pt.measurement == "rejected"]
    assert len(letters) == 25 and all("no detection ghost-" in pt.fields["reason"] for pt in letters)
    assert on_disk(tmp_path) == len(picture(99))


def test_a_full_box_budget_refuses_new_pictures_and_never_evicts_an_open_leads(tmp_path):
    p = pipeline(tmp_path, EvidenceBudget(max_total_bytes=100 * MB, max_box_bytes=10 * MB, retention_s=86400))
    run(p, [detection(n, picture(n, MB)) for n in range(10)])
    run(p, [evidence(f"box-1-d{n}", picture(n, MB)) for n in range(10)])
    points = run(p, [detection(10, picture(10, MB)), evidence("box-1-d10", picture(10, MB))])
    [letter] = [pt for pt in points if pt.measurement == "rejected"]
    assert "evidence budget full" in letter.fields["reason"] and letter.fields["bytes"] == MB
    assert on_disk(tmp_path) == 10 * MB                                  # the open lead's pictures all stay
    [budget] = [pt for pt in points if pt.measurement == "box_evidence"]
    assert budget.fields["refused"] == 1 and budget.fields["used_bytes"] == 10 * MB
    table = format_boxes_table([{"box": "box-1", "district": "old-town", "last_seen": NOW, "online": True,
                                 "last_seq": 10, "open_gaps": 0, "missing": 0, "backfilled": 0,
                                 "dropped_by_policy": 0, "delivery": "confirmed", "evidence_used": 10 * MB,
                                 "evidence_budget": 10 * MB, "evidence_refused": 1}])
    assert "warning: box-1: evidence budget full, 1 picture(s) refused" in table


def test_closed_leads_pictures_go_first_oldest_first_once_past_retention(tmp_path):
    budget = EvidenceBudget(max_total_bytes=100 * MB, max_box_bytes=4 * MB, retention_s=3600)
    store = EvidenceStore(tmp_path, budget)
    for n in range(4):
        store.admit(picture(n, MB), box="box-1", district="d", detection_id=f"d{n}", lead_id=f"L{n % 2}",
                    known=True, now_ms=NOW + n)
    store.lead_closed("L0", NOW - 3_600_001)     # d0 and d2: closed past retention
    store.lead_closed("L1", NOW - 60_000)        # d1 and d3: closed, but too recently
    store.admit(picture(9, MB), box="box-1", district="d", detection_id="d9", lead_id="L9", known=True, now_ms=NOW)
    assert not store.has(hashlib.sha256(picture(0, MB)).hexdigest())   # the oldest evictable went
    assert store.has(hashlib.sha256(picture(2, MB)).hexdigest())
    assert store.used("box-1") == 4 * MB


def test_the_total_budget_holds_across_boxes_and_survives_a_restart(tmp_path):
    budget = EvidenceBudget(max_total_bytes=3 * MB, max_box_bytes=10 * MB, retention_s=0)
    store = EvidenceStore(tmp_path, budget)
    for n, box in enumerate(("a", "b", "c")):
        store.admit(picture(n, MB), box=box, district="d", detection_id=f"d{n}", lead_id="L", known=True,
                    now_ms=NOW)
    store.close()
    reopened = EvidenceStore(tmp_path, budget)
    assert reopened.used() == 3 * MB
    try:
        reopened.admit(picture(7, MB), box="d", district="d", detection_id="d7", lead_id="M", known=True,
                       now_ms=NOW)
    except Exception as exc:   # noqa: BLE001
        assert "the total budget" in str(exc)
    else:
        raise AssertionError("a picture beyond the total budget was kept")
