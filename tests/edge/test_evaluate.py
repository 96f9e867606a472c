"""`edge eval`: matching reported incidents to ground truth, and the numbers it prints."""

from pathlib import Path

import numpy as np
import pytest

from edge.config import ConfigError, ZoneConfig
from contract import Category
from edge.evaluate import (
    Clip,
    GroundTruth,
    covered_seconds,
    find_clips,
    load_clip,
    overlap_of_smaller,
    report,
    score_clip,
    summarise,
)
from edge.rules import RuleHit
from edge.zones import zone_for_frame

ZONE = zone_for_frame(ZoneConfig(name="road", type="dumping_hotspot", polygon=[(0, 0), (1, 0), (1, 1)],
                                 lat=0, lon=0), 100, 100)
TRUE_BOX = (100.0, 100.0, 140.0, 130.0)


def clip(*incidents: dict, split: str = "tune") -> Clip:
    truth = GroundTruth.model_validate({"clip": "x.mp4", "split": split, "incidents": list(incidents)})
    return Clip("x", Path("x.toml"), truth)


def dumping(start_s: float = 10.0, **extra) -> dict:
    return {"category": "illegal_dumping", "zone": "road", "start_s": start_s, "box": TRUE_BOX} | extra


def hit(t_s: float, box=TRUE_BOX, category=Category.ILLEGAL_DUMPING, event="new") -> RuleHit:
    return RuleHit(category, event, ZONE, 1, "static_object", 0.5, box, 20.0, t_s)


@pytest.mark.parametrize("t_s, matched", [
    (27.9, False),   # more than 2 s early (due at 30)
    (28.0, True),
    (30.0, True),
    (40.0, True),
    (40.1, False),   # more than 10 s late
])
def test_a_report_matches_within_the_time_window(t_s, matched):
    score = score_clip(clip(dumping()), [hit(t_s)], 120.0, {"road": 20.0})
    assert len(score.matches) == int(matched)
    assert len(score.false) == int(not matched)


@pytest.mark.parametrize("box, matched", [
    ((100, 100, 140, 130), True),
    ((120, 100, 160, 130), True),     # half of the smaller box overlaps
    ((125, 100, 165, 130), False),
    ((110, 105, 120, 115), True),     # a small box inside the true one
])
def test_a_report_matches_when_half_of_the_smaller_box_overlaps(box, matched):
    score = score_clip(clip(dumping()), [hit(31.0, box)], 120.0, {"road": 20.0})
    assert len(score.matches) == int(matched)


def test_the_category_must_agree_and_only_new_messages_count():
    score = score_clip(clip(dumping()), [hit(31.0, category=Category.STREET_VENDING), hit(31.0, event="update")],
                       120.0, {"road": 20.0})
    assert score.matches == [] and len(score.false) == 1 and len(score.missed) == 1


def test_each_true_incident_takes_one_report_the_closest_in_time():
    score = score_clip(clip(dumping()), [hit(36.0), hit(30.5)], 120.0, {"road": 20.0})
    assert [m.hit.t_s for m in score.matches] == [30.5]
    assert [h.t_s for h in score.false] == [36.0]
    assert score.false_in_control == []      # the extra report falls inside the incident


def test_false_incidents_outside_every_incident_count_against_control_time():
    score = score_clip(clip(dumping(start_s=50.0, end_s=100.0)), [hit(20.0), hit(75.0)], 120.0, {"road": 20.0})
    assert [h.t_s for h in score.false_in_control] == [20.0]
    assert score.control_s == pytest.approx(70.0)


def test_summary_numbers():
    scores = [score_clip(clip(dumping(), dumping(start_s=60.0)), [hit(31.0), hit(5.0)], 3600.0, {"road": 20.0}),
              score_clip(clip(split="holdout"), [], 1800.0, {"road": 20.0})]
    overall = summarise(scores)
    assert (overall.recall, overall.precision) == (0.5, 0.5)
    assert overall.control_s == pytest.approx(10 + 1800)     # the first clip's incidents cover 10 s to its end
    assert overall.false_per_hour == pytest.approx(1 / (1810 / 3600))
    result = report(scores)
    assert result["splits"]["holdout"]["incidents"] == 0
    assert [row["clip"] for row in result["clips"]] == ["x", "x"]
    assert result["clips"][0]["missed"][0]["due_s"] == 80.0


def test_covered_seconds_merges_overlapping_spans_and_clips_them():
    assert covered_seconds([(10, 20), (15, 30), (50, 70), (90, 200)], 100) == pytest.approx(20 + 20 + 10)


def test_overlap_of_smaller():
    assert overlap_of_smaller((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(0.5)
    assert overlap_of_smaller((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_an_unknown_zone_in_the_ground_truth_is_an_error():
    with pytest.raises(ConfigError, match="zone 'road'"):
        score_clip(clip(dumping()), [], 60.0, {"verge": 20.0})


@pytest.mark.parametrize("text, problem", [
    ('clip = "a.mp4"\nsplit = "test"\n', "split"),
    ('clip = "a.mp4"\n[[incidents]]\ncategory = "illegal_dumping"\nzone = "z"\nstart_s = 1\nbox = [5, 5, 1, 1]\n',
     "incidents.0"),
    ('clip = "a.mp4"\nframes = 3\n', "frames"),
])
def test_ground_truth_errors_name_the_key(tmp_path, text, problem):
    path = tmp_path / "a.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_clip(path)
    assert any(p.startswith(problem) for p in error.value.problems)


def test_find_clips_skips_box_configs_and_needs_at_least_one_clip(tmp_path):
    (tmp_path / "box.toml").write_text('version = 1\nbox = "b"\n')
    with pytest.raises(ConfigError, match="no ground-truth file"):
        find_clips(tmp_path)
    (tmp_path / "one.toml").write_text('clip = "one.mp4"\nconfig = "box.toml"\n')
    assert [c.name for c in find_clips(tmp_path)] == ["one"]
    assert find_clips(tmp_path)[0].config_path == (tmp_path / "box.toml").resolve()


class CountingDetector:
    labels = ("person",)
    name = "counting"

    def __init__(self):
        self.calls = 0
        self.card = type("Card", (), {"sha256": "ab" * 32})()
        self.min_score, self.nms_iou = 0.3, 0.5

    def detect(self, image):
        from edge.detections import Detections

        self.calls += 1
        return Detections(np.array([[1, 2, 3, 4]], np.float32) * float(image[0, 0, 0]),
                          np.array([0.9], np.float32), np.array([0], np.int32), labels=self.labels)


def test_the_detection_cache_answers_seen_frames_across_runs(tmp_path):
    from edge.detectors.cache import CachedDetector

    frames = [np.full((8, 8, 3), v, np.uint8) for v in (1, 2, 1)]
    inner = CountingDetector()
    cached = CachedDetector(inner, tmp_path)
    first = [cached.detect(f) for f in frames]
    assert inner.calls == 2
    cached.save()
    again = CachedDetector(CountingDetector(), tmp_path)
    second = [again.detect(f) for f in frames]
    assert again.detector.calls == 0
    for a, b in zip(first, second):
        assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.scores, b.scores)
        assert a.labels == b.labels == ("person",)
