"""Zones, tracking and dwell rules on hand-built detections."""

import cv2
import numpy as np
import pytest

from edge.config import RulesConfig, ZoneConfig
from edge.detections import Detections
from edge.nms import nms, pairwise_iou
from edge.rules import DwellRules
from edge.staticobjects import static_components
from edge.tracker import IouTracker
from edge.zones import zone_for_frame

LABELS = ("person", "bicycle", "car")


def dets(*rows) -> Detections:
    """rows of (x1, y1, x2, y2, score, class_id)"""
    arr = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    return Detections(arr[:, :4].copy(), arr[:, 4].copy(), arr[:, 5].astype(np.int32), labels=LABELS)


def zone(**changes) -> ZoneConfig:
    fields = dict(name="plaza", type="no_vending", polygon=[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)],
                  lat=48.2, lon=16.3, **changes)
    return ZoneConfig(**fields)


@pytest.mark.parametrize(
    "point, inside",
    [((50, 50), True), ((10, 50), False), ((50, 80), False), ((74, 26), True), ((50, 25.5), True)],
)
def test_zone_contains_points(point, inside):
    z = zone_for_frame(zone(), 100, 100)
    assert z.contains(np.array([point], dtype=float))[0] == inside


def test_zone_is_judged_at_the_bottom_centre_of_a_box():
    z = zone_for_frame(zone(), 100, 100)
    d = dets((40, 10, 60, 50, 0.9, 0), (40, 50, 60, 90, 0.9, 0))  # feet at y=50 (in), y=90 (out)
    assert list(z.contains(d.foot_points())) == [True, False]


def test_selection_returns_a_new_container():
    d = dets((0, 0, 10, 10, 0.9, 0), (5, 5, 20, 20, 0.8, 2))
    cars = d.with_labels({"car"})
    assert len(cars) == 1 and cars.label_of(0) == "car" and len(d) == 2


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    keep = nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5)
    assert sorted(keep.tolist()) == [0, 2]


def test_tracker_keeps_ids_and_survives_short_misses():
    tracker = IouTracker(max_missing_s=1.0)
    a = tracker.update(dets((0, 0, 10, 20, 0.9, 0), (50, 0, 60, 20, 0.9, 0)), 0.0)
    b = tracker.update(dets((51, 0, 61, 20, 0.9, 0)), 0.2)          # first one missed
    c = tracker.update(dets((1, 0, 11, 20, 0.9, 0), (52, 0, 62, 20, 0.9, 0)), 0.4)
    assert b.track_ids[0] == a.track_ids[1]
    assert list(c.track_ids) == list(a.track_ids)
    d = tracker.update(dets((1, 0, 11, 20, 0.9, 0)), 3.0)          # long gap: a new track
    assert d.track_ids[0] not in a.track_ids


def test_tracker_never_matches_across_classes():
    tracker = IouTracker()
    a = tracker.update(dets((0, 0, 10, 20, 0.9, 0)), 0.0)
    b = tracker.update(dets((0, 0, 10, 20, 0.9, 2)), 0.2)
    assert a.track_ids[0] != b.track_ids[0]


def run_rules(rules: DwellRules, tracker: IouTracker, frames):
    hits = []
    for t, d in frames:
        tracked = tracker.update(d, t)
        hits.extend(rules.update(tracked, t, tracker.live_track_ids()))
    return hits


def vending_rules(dwell_s=10.0, update_s=5.0) -> DwellRules:
    rules = RulesConfig(street_vending={"labels": ["person"], "dwell_s": dwell_s, "update_s": update_s})
    return DwellRules(rules, [zone_for_frame(zone(), 100, 100)], 100)


def test_someone_staying_in_the_zone_is_reported_new_update_end():
    frames = [(t * 1.0, dets((45, 40, 55, 60, 0.8, 0))) for t in range(17)]
    frames += [(t * 1.0, dets()) for t in range(17, 22)]
    hits = run_rules(vending_rules(), IouTracker(max_missing_s=2.0), frames)
    assert [(h.event, h.t_s) for h in hits] == [("new", 10.0), ("update", 15.0), ("end", 19.0)]
    assert hits[0].category.value == "street_vending" and hits[0].dwell_s == 10.0


def test_a_passer_by_is_not_reported():
    frames = [(t * 1.0, dets((10 + 5 * t, 40, 20 + 5 * t, 60, 0.8, 0))) for t in range(17)]
    assert run_rules(vending_rules(), IouTracker(), frames) == []


def test_low_scores_and_other_labels_are_not_reported():
    weak = [(t * 1.0, dets((45, 40, 55, 60, 0.2, 0))) for t in range(15)]
    cars = [(t * 1.0, dets((45, 40, 55, 60, 0.9, 2))) for t in range(15)]
    assert run_rules(vending_rules(), IouTracker(), weak) == []
    assert run_rules(vending_rules(), IouTracker(), cars) == []


def test_zone_dwell_overrides_the_rule():
    rules = DwellRules(RulesConfig(street_vending={"labels": ["person"], "dwell_s": 100.0}),
                       [zone_for_frame(zone(dwell_s=3.0), 100, 100)], 100)
    frames = [(t * 1.0, dets((45, 40, 55, 60, 0.8, 0))) for t in range(5)]
    assert [h.event for h in run_rules(rules, IouTracker(), frames)] == ["new"]


def test_support_labels_in_the_zone_raise_the_score():
    rules = RulesConfig(street_vending={"labels": ["person"], "dwell_s": 3.0, "support_labels": ["car"],
                                        "support_boost": 0.2})
    stall = DwellRules(rules, [zone_for_frame(zone(), 100, 100)], 100)
    frames = [(t * 1.0, dets((45, 40, 55, 60, 0.6, 0), (30, 50, 40, 70, 0.5, 2))) for t in range(5)]
    [hit] = run_rules(stall, IouTracker(), frames)
    assert hit.score == pytest.approx(0.8)


@pytest.mark.parametrize(
    "rule, kept",
    [
        ({"min_score": 0.5}, [True, False, True]),
        ({"min_area": 0.01}, [True, True, False]),             # 3x3 px box is 0.09 % of the frame
        ({"max_ratio": 1.0}, [True, True, True]),
        ({"min_ratio": 1.5}, [False, False, False]),
        ({"masks": [[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]]}, [False, False, True]),
    ],
)
def test_label_filters(rule, kept):
    from edge.config import ObjectFilter
    from edge.filters import LabelFilters

    d = dets((10, 10, 30, 50, 0.9, 0), (20, 10, 40, 50, 0.3, 0), (80, 80, 83, 83, 0.9, 0))
    filters = LabelFilters({"person": ObjectFilter(**rule)}, [], 100, 100)
    assert list(np.isin(np.arange(3), [i for i in range(3) if filters.apply(d[np.array([i])]).xyxy.size])) == kept


def test_a_zone_filter_overrides_the_camera_filter_inside_the_zone():
    from edge.config import ObjectFilter
    from edge.filters import LabelFilters

    strict_zone = zone_for_frame(zone(filters={"person": {"min_score": 0.95}}), 100, 100)
    filters = LabelFilters({"person": ObjectFilter(min_score=0.1)}, [strict_zone], 100, 100)
    d = dets((45, 40, 55, 60, 0.9, 0), (5, 70, 15, 90, 0.9, 0))   # first in the zone, second outside
    assert filters.apply(d).xyxy[:, 0].tolist() == [5.0]


class CountingDetector:
    labels = LABELS
    name = "counting"

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return dets()


def test_motion_gate_runs_the_detector_on_motion_and_on_recheck_only():
    from edge.camera import Frame
    from edge.config import CameraConfig
    from edge.pipeline import CameraPipeline

    camera = CameraConfig(name="cam", source="x.mp4", motion={"recheck_s": 2.0})
    detector = CountingDetector()
    pipeline = CameraPipeline(camera, RulesConfig(), detector)
    still = np.full((120, 160, 3), 90, np.uint8)
    moving = still.copy()
    moving[40:80, 60:100] = 250
    frames = [still] * 25 + [moving, still] + [still] * 23         # 10 s at 5 fps, one flash at 5 s
    for i, image in enumerate(frames):
        pipeline.process(Frame("cam", i, i * 0.2, i * 200, image))
    # The first frame, rechecks every 2 s, and the flash with the few frames the
    # recent-scene average takes to forget it: a fifth of the frames at most.
    assert 6 <= detector.calls <= 10 <= len(frames) // 5


def test_a_motion_mask_set_live_takes_effect_at_once():
    from edge.config import MotionConfig
    from edge.motion import MotionDetector
    from edge.thumbnail import thumbnail

    still = np.full((120, 160, 3), 90, np.uint8)
    flash = still.copy()
    flash[0:60, 0:80] = 250                                          # top-left quarter changes
    gate = MotionDetector(MotionConfig())
    gate.update(thumbnail(still))
    assert gate.is_moving(gate.update(thumbnail(flash)))
    gate.update(thumbnail(still))
    gate.update(thumbnail(still))
    gate.reconfigure(MotionConfig(masks=[[(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)]]))
    assert gate.update(thumbnail(flash)) == 0.0


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> list[int]:
    """The textbook loop, as the reference the fast NMS must agree with."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(class_ids[i] != class_ids[k] or pairwise_iou(boxes[k:k + 1], boxes[i:i + 1])[0, 0] <= iou for k in keep):
            keep.append(i)
    return keep


def test_nms_keeps_what_the_greedy_loop_keeps_best_first():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        corner = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(1, 80, (n, 2))], axis=1).astype(np.float32)
        scores = rng.uniform(0.3, 1.0, n).astype(np.float32)
        classes = rng.integers(0, 3, n)
        assert nms(boxes, scores, classes, 0.45).tolist() == greedy_nms(boxes, scores, classes, 0.45)


def test_a_track_that_stays_put_becomes_stationary_and_loses_it_when_it_walks_off():
    tracker = IouTracker(stationary_s=2.0, stationary_drift=0.25)
    flags = []
    for step in range(8):                       # 20 px tall box, jitter of 2 px: staying put
        x = 100 + (step % 2) * 2
        flags.append(bool(tracker.update(dets((x, 0, x + 10, 20, 0.9, 0)), step * 0.5).stationary[0]))
    assert flags == [False, False, False, False, True, True, True, True]
    walked = tracker.update(dets((108, 0, 118, 20, 0.9, 0)), 4.0)  # foot moved 8 px > 0.25 x 20 px
    assert walked.stationary.tolist() == [False] and walked.track_ids[0] == 1
    later = [tracker.update(dets((108, 0, 118, 20, 0.9, 0)), t) for t in (4.5, 5.0, 5.5, 6.0)]
    assert [t.stationary[0] for t in later] == [False, False, False, True]
    assert {int(t.track_ids[0]) for t in later} == {1}


def test_stationary_flags_follow_selection():
    tracker = IouTracker(stationary_s=0.0)
    tracked = tracker.update(dets((0, 0, 10, 20, 0.9, 0), (50, 0, 60, 20, 0.8, 2)), 0.0)
    assert tracked[np.array([False, True])].stationary.tolist() == [True]
    with pytest.raises(ValueError, match="stationary"):
        Detections(tracked.xyxy, tracked.scores, tracked.class_ids, stationary=np.zeros(3, bool))


def test_static_components_match_labelling_the_whole_map():
    rng = np.random.default_rng(3)
    for _ in range(50):
        static = np.zeros((120, 160), np.uint8)
        for _ in range(int(rng.integers(0, 6))):
            x, y = int(rng.integers(0, 150)), int(rng.integers(0, 110))
            static[y:y + int(rng.integers(1, 30)), x:x + int(rng.integers(1, 30))] = 1
        count, _, stats, _ = cv2.connectedComponentsWithStats(static, connectivity=8)
        expected = sorted(map(tuple, stats[1:count].tolist()))
        assert sorted(map(tuple, static_components(static).tolist())) == expected


def test_someone_who_leaves_the_zone_and_comes_back_is_judged_afresh():
    def x(t):    # at a spot 0-1 s, walks out of the zone, waits outside, comes back to the same spot at 30 s
        return 65 if t <= 1 or t >= 30 else min(95, 65 + 6 * (t - 1)) if t <= 25 else max(65, 95 - 6 * (t - 25))

    frames = [(t * 1.0, dets((x(t), 40, x(t) + 10, 60, 0.8, 0))) for t in range(46)]
    hits = run_rules(vending_rules(dwell_s=10.0, update_s=100.0), IouTracker(), frames)
    assert [(h.event, h.t_s) for h in hits] == [("new", 40.0)]     # not at 30 s with 29 s of "dwell"


def test_a_foot_jittering_over_the_zone_edge_is_not_leaving():
    inside, edge = (45, 40, 55, 60, 0.8, 0), (45, 40, 55, 77, 0.8, 0)     # feet at y=60 (in), y=77 (out)
    frames = [(t * 1.0, dets(edge if t % 4 == 3 else inside)) for t in range(15)]
    hits = run_rules(vending_rules(dwell_s=10.0, update_s=100.0), IouTracker(iou_threshold=0.01), frames)
    assert [(h.event, h.t_s) for h in hits] == [("new", 10.0)]


def moving_rules(min_moves: int) -> DwellRules:
    rules = RulesConfig(street_vending={"labels": ["person"], "dwell_s": 10.0, "min_moves": min_moves})
    return DwellRules(rules, [zone_for_frame(zone(), 100, 100)], 100)


@pytest.mark.parametrize("moves_per_second, reported", [(0.0, False), (0.1, False), (0.5, True)])
def test_a_person_must_be_seen_to_move_in_place_before_it_is_reported(moves_per_second, reported):
    tracker, rules, hits = IouTracker(), moving_rules(min_moves=2), []
    for t in range(16):
        tracked = tracker.update(dets((45, 40, 55, 60, 0.8, 0)), float(t))
        moves = {int(tracked.track_ids[0]): int(moves_per_second * t)}
        hits += rules.update(tracked, float(t), tracker.live_track_ids(), moves=moves)
    assert bool([h for h in hits if h.event == "new"]) == reported


def test_a_vending_table_without_min_moves_gets_the_vending_default():
    assert RulesConfig(street_vending={"labels": ["person"], "dwell_s": 10.0}).street_vending.min_moves == 2
    assert RulesConfig(street_vending={"labels": ["person"], "dwell_s": 10.0, "min_moves": 0}).street_vending.min_moves == 0
    assert RulesConfig().illegal_dumping.min_moves == 0


def test_two_pieces_of_one_dumped_heap_are_one_incident_two_heaps_apart_are_two():
    rules = RulesConfig(illegal_dumping={"labels": ["car"], "dwell_s": 5.0})
    hotspot = ZoneConfig(name="verge", type="dumping_hotspot", polygon=[(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)],
                         lat=48.2, lon=16.3)
    dumping = DwellRules(rules, [zone_for_frame(hotspot, 100, 100)], 100)
    pieces = [(t * 1.0, dets((40, 50, 46, 56, 0.9, 2), (50, 50, 58, 57, 0.9, 2))) for t in range(8)]
    assert [h.event for h in run_rules(dumping, IouTracker(), pieces)] == ["new"]
    dumping = DwellRules(rules, [zone_for_frame(hotspot, 100, 100)], 100)
    apart = [(t * 1.0, dets((28, 30, 34, 36, 0.9, 2), (64, 64, 70, 70, 0.9, 2))) for t in range(8)]
    assert [h.event for h in run_rules(dumping, IouTracker(), apart)] == ["new", "new"]


def test_a_vendor_the_detector_misses_for_a_while_keeps_their_time_on_the_spot():
    # Seen 0-6 s, missed 7-11 s (the track ends after 3 s), seen again from 12 s on the same spot.
    frames = [(t * 1.0, dets((45, 40, 55, 60, 0.8, 0)) if not 7 <= t <= 11 else dets()) for t in range(20)]
    hits = run_rules(vending_rules(dwell_s=15.0, update_s=100.0), IouTracker(max_missing_s=3.0), frames)
    assert [(h.event, h.t_s) for h in hits] == [("new", 15.0)]


def test_passers_by_crossing_one_spot_one_after_another_are_not_a_vendor():
    frames = []
    for t10 in range(0, 400, 2):        # a new walker every 4 s, each crossing the zone at 10 px/s
        t = t10 / 10
        x = 20 + (t % 4) * 10
        frames.append((t, dets((x, 40, x + 10, 60, 0.8, 0))))
    assert run_rules(vending_rules(dwell_s=10.0), IouTracker(), frames) == []


def test_a_box_swollen_for_a_moment_by_a_passer_by_is_not_leaving():
    normal, swollen = (45, 40, 55, 60, 0.8, 0), (40, 20, 65, 70, 0.8, 0)   # the foot drops 10 px for one frame
    frames = [(t * 1.0, dets(swollen if t == 6 else normal)) for t in range(13)]
    hits = run_rules(vending_rules(dwell_s=10.0, update_s=100.0), IouTracker(iou_threshold=0.1), frames)
    assert [(h.event, h.t_s) for h in hits] == [("new", 10.0)]


def test_a_vendor_given_a_new_track_id_keeps_their_time_on_the_spot():
    # The detector's box changes shape at 6 s (someone brushed past): the tracker starts a new
    # track on the same spot; when the old one ends, the new one carries the stay on.
    thin, wide = (47, 20, 53, 60, 0.8, 0), (38, 45, 62, 60, 0.8, 0)
    frames = [(t * 1.0, dets(thin if t < 6 else wide)) for t in range(14)]
    hits = run_rules(vending_rules(dwell_s=10.0, update_s=100.0), IouTracker(iou_threshold=0.3, max_missing_s=2.0),
                     frames)
    assert [(h.event, h.t_s) for h in hits] == [("new", 10.0)]


def test_a_stay_is_not_handed_along_a_queue_of_people_each_a_step_further_on():
    # Person k stands at x = 20 + 3k from 3k s to 3k + 4 s: each hand-over is within the
    # drift limit (4 px), but the fifth person stands 12 px from where the first one did.
    frames = []
    for t10 in range(0, 300, 2):
        t = t10 / 10
        people = [(20 + 3 * k, 40, 30 + 3 * k, 60, 0.8, 0) for k in range(8) if 3 * k <= t <= 3 * k + 4]
        frames.append((t, dets(*people)))
    hits = run_rules(vending_rules(dwell_s=10.0), IouTracker(iou_threshold=0.6, max_missing_s=1.0), frames)
    assert hits == []


def test_a_spot_left_empty_most_of_the_time_is_not_taken_up_again():
    # Someone stands 0-4 s and goes; someone else stops on the same spot at 13 s, within regain_s
    # of the first track's end, but the spot was empty for most of those 13 s.
    frames = [(t * 1.0, dets((45, 40, 55, 60, 0.8, 0)) if t <= 4 or t >= 13 else dets()) for t in range(20)]
    hits = run_rules(vending_rules(dwell_s=10.0, update_s=100.0), IouTracker(max_missing_s=1.0), frames)
    assert [(h.event, h.t_s) for h in hits] == []


def test_a_new_settings_snapshot_reaches_every_stage_and_keeps_the_tracks():
    from edge.camera import Frame
    from edge.config import CameraConfig, StaticObjectConfig, TrackerConfig
    from edge.pipeline import CameraPipeline
    from edge.settings import CameraSettings

    hotspot = ZoneConfig(name="verge", type="dumping_hotspot", polygon=[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9)],
                         lat=48.2, lon=16.3)
    before = CameraSettings(CameraConfig(name="cam", source="x.mp4", zones=[hotspot]), RulesConfig(),
                            StaticObjectConfig(), TrackerConfig())
    pipeline = CameraPipeline.from_settings(before, CountingDetector())
    image = np.full((120, 160, 3), 90, np.uint8)
    pipeline.process(Frame("cam", 0, 0.0, 0, image))
    moved = hotspot.model_copy(update={"polygon": [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8)], "dwell_s": 7.0})
    after = CameraSettings(CameraConfig(name="cam", source="x.mp4", zones=[moved], motion={"recheck_s": 9.0}),
                           RulesConfig(illegal_dumping={"labels": ["suitcase"], "dwell_s": 12.0}), StaticObjectConfig(diff_threshold=30.0),
                           TrackerConfig(iou_threshold=0.4))
    tracker, finder, rules = pipeline.tracker, pipeline.static_finder, pipeline.rules
    pipeline.reconfigure(after)
    assert pipeline.settings is after
    assert (pipeline.tracker, pipeline.static_finder, pipeline.rules) == (tracker, finder, rules)    # same stages
    assert rules.rules.illegal_dumping.dwell_s == 12.0 and rules.zones[0].config.dwell_s == 7.0
    assert pipeline.motion.config.recheck_s == 9.0 and tracker.iou_threshold == 0.4
    assert finder.config.diff_threshold == 30.0
    assert before.rules.illegal_dumping.dwell_s != 12.0           # the old snapshot is untouched
