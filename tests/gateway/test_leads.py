"""Dedupe of detections into leads, on event time."""

import pytest

from contract import Detection
from gateway.dedupe.leads import LeadBook, MergePolicies, MergePolicy, haversine_m

T0 = 1_795_813_200_000
BASE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
            score=0.8, bbox=(0.1, 0.1, 0.2, 0.3), zone="plaza", track=1, dwell_s=60.0, lat=48.2085, lon=16.3731,
            model="nanodet-g-416", config="abcdef12")


def detection(n: int, **changes) -> Detection:
    fields = {**BASE, "id": f"d{n}", "seq": n, "ts": T0 + n * 1000, **changes}
    return Detection(**fields)


def test_a_single_detection_is_only_a_candidate():
    book = LeadBook()
    merge = book.add(detection(1))
    assert merge.lead.status == "candidate" and not merge.opened
    assert book.leads() == []


def test_second_detection_in_the_same_zone_opens_the_lead():
    book = LeadBook()
    book.add(detection(1))
    merge = book.add(detection(2))
    assert merge.opened and merge.lead.status == "open"
    assert merge.entry.rule == "same_zone" and merge.entry.gap_s == 1.0
    assert [e.detection_id for e in merge.lead.ledger] == ["d1", "d2"]


def test_a_repeated_id_changes_nothing():
    book = LeadBook()
    book.add(detection(1))
    assert book.add(detection(1)) is None
    assert book.add(detection(2)).lead.detections == 2


def test_another_box_within_the_radius_joins_by_distance():
    book = LeadBook()
    book.add(detection(1))
    # about 11 m north
    merge = book.add(detection(2, box="box-2", camera="south", zone="plaza-b", lat=48.2086))
    assert merge.entry.rule == "distance" and 5 < merge.entry.distance_m < 20
    assert sorted(merge.lead.boxes) == ["box-1", "box-2"]


def test_the_same_zone_wins_over_a_closer_group_and_distance_decides_when_the_zone_is_closed():
    book = LeadBook()
    zone_lead = book.add(detection(1, lat=48.2088)).lead                     # ~33 m north
    near_lead = book.add(detection(2, box="box-2", zone="kiosk")).lead
    assert zone_lead is not near_lead
    merge = book.add(detection(3))                                            # plaza, on top of the kiosk group
    assert merge.lead is zone_lead and merge.entry.rule == "same_zone"
    book.set_status(zone_lead.lead_id, "closed")
    merge = book.add(detection(5))
    assert merge.lead is near_lead and merge.entry.rule == "distance"


def test_far_away_or_late_detections_start_new_groups():
    book = LeadBook(MergePolicy(merge_gap_s=900))
    first = book.add(detection(1)).lead
    far = book.add(detection(2, box="box-2", zone="elsewhere", lat=48.2100)).lead
    late = book.add(detection(3, ts=T0 + 1000 + 901_000)).lead
    assert len({first.lead_id, far.lead_id, late.lead_id}) == 3


def test_another_category_never_merges():
    book = LeadBook()
    book.add(detection(1))
    assert book.add(detection(2, category="illegal_dumping")).lead.detections == 1


def test_a_late_detection_lands_before_first_seen():
    book = LeadBook()
    book.add(detection(5))
    merge = book.add(detection(2))
    assert merge.lead.first_seen == T0 + 2000 and merge.lead.last_seen == T0 + 5000
    assert merge.lead.anchor_ts == T0 + 5000  # the point's timestamp stays put
    assert merge.entry.gap_s == 3.0


def test_the_best_scored_picture_that_arrived_is_the_leads_evidence():
    book = LeadBook()
    arrived = {"a" * 64, "c" * 64}
    book.add(detection(1, score=0.5, evidence_sha256="a" * 64), verified=arrived.__contains__)
    lead = book.add(detection(2, score=0.9, evidence_sha256="b" * 64), verified=arrived.__contains__).lead
    book.add(detection(3, score=0.7, evidence_sha256="c" * 64), verified=arrived.__contains__)
    assert lead.score == 0.9 and lead.evidence_sha256 == "c" * 64
    # The best picture arrives late and takes over; a worse one does not.
    assert book.evidence_arrived("d2", "b" * 64) is lead and lead.evidence_sha256 == "b" * 64
    assert book.evidence_arrived("d1", "a" * 64) is None and lead.evidence_sha256 == "b" * 64


def test_prune_forgets_groups_that_ended_before_the_cutoff_and_their_ids():
    book = LeadBook(MergePolicy(merge_gap_s=10))
    book.add(detection(1))
    assert book.prune(T0 + 1000) == 0
    assert book.prune(T0 + 1001) == 1
    assert not book.seen("d1") and len(book) == 0


@pytest.mark.parametrize("lat2, expected", [(48.2085, 0.0), (48.2094, 100.1)])
def test_haversine(lat2, expected):
    assert haversine_m(48.2085, 16.3731, lat2, 16.3731) == pytest.approx(expected, abs=0.5)


POLICIES = MergePolicies(MergePolicy(merge_radius_m=30, merge_gap_s=900, min_detections=2), {
    ("illegal_dumping", None): {"min_detections": 1, "merge_gap_s": 3600},
    (None, "market"): {"merge_radius_m": 10},
    ("illegal_dumping", "market"): {"min_detections": 3},
})


def test_policies_go_from_the_default_to_category_to_district_to_category_within_district():
    assert POLICIES.for_("street_vending", "old-town") == MergePolicy(30, 900, 2)
    assert POLICIES.for_("illegal_dumping", "old-town") == MergePolicy(30, 3600, 1)
    assert POLICIES.for_("street_vending", "market") == MergePolicy(10, 900, 2)
    assert POLICIES.for_("illegal_dumping", "market") == MergePolicy(10, 3600, 3)
    assert (POLICIES.largest_radius_m, POLICIES.largest_gap_s) == (30, 3600)


def test_a_category_may_open_on_one_detection_and_wait_longer_between_them():
    book = LeadBook(POLICIES)
    dumped = book.add(detection(1, category="illegal_dumping", label="suitcase"))
    assert dumped.opened and dumped.lead.status == "open"
    later = book.add(detection(2, category="illegal_dumping", label="suitcase", ts=T0 + 2000 + 1_800_000))
    assert later.lead is dumped.lead and later.entry.gap_s == 1801.0
    vending = book.add(detection(3, ts=T0 + 3000))
    assert not vending.opened and book.add(detection(4, ts=T0 + 3000 + 1_800_000)).lead is not vending.lead


def test_a_district_may_merge_within_a_smaller_radius():
    about_20_m_apart = 48.2085 + 20 / 111_195
    for district, merged in (("old-town", True), ("market", False)):
        book = LeadBook(POLICIES)
        first = book.add(detection(1, district=district, id=f"{district}-1")).lead
        second = book.add(detection(2, district=district, id=f"{district}-2", box="box-2", zone="kiosk",
                                    lat=about_20_m_apart)).lead
        assert (second is first) == merged, district


def test_a_category_within_a_district_has_the_last_word():
    book = LeadBook(POLICIES)
    for n in range(1, 4):
        merge = book.add(detection(n, category="illegal_dumping", label="suitcase", district="market"))
        assert merge.opened == (n == 3)
