"""Signs of life inside a tracked person's box."""

import numpy as np

from edge.detections import Detections
from edge.liveness import LivenessMeter

PERSON = (100, 100, 140, 200)


def tracked(*boxes, ids=None, labels=("person", "car"), class_ids=None) -> Detections:
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(xyxy)
    return Detections(xyxy, np.full(n, 0.8, np.float32),
                      np.asarray(class_ids if class_ids is not None else [0] * n, np.int32), labels=labels
                      ).with_tracks(np.asarray(ids or list(range(1, n + 1)), np.int64), np.zeros(n, bool))


def frame(seed: int, arm_at: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = (np.full((300, 300, 3), 120) + rng.integers(-4, 5, (300, 300, 3))).astype(np.uint8)
    image[100:200, 100:140] = 60                                  # the body
    if arm_at is not None:
        image[arm_at:arm_at + 30, 128:140] = 200                  # a hand moving up and down
    return image


def moves_after(meter: LivenessMeter, frames, boxes=lambda t: tracked(PERSON)) -> int:
    result = {}
    for t, image in enumerate(frames):
        result = meter.update(boxes(t), image, float(t))
    return result.get(1, 0)


def test_a_fixed_thing_never_moves():
    assert moves_after(LivenessMeter(("person",)), [frame(seed) for seed in range(20)]) == 0


def test_a_person_who_moves_their_hands_does():
    frames = [frame(seed, arm_at=110 + 30 * (seed % 2)) for seed in range(20)]
    assert moves_after(LivenessMeter(("person",)), frames) >= 15


def test_passers_by_do_not_lend_their_motion():
    frames = [frame(seed, arm_at=110 + 30 * (seed % 2)) for seed in range(20)]    # the change comes from...
    walker = (95, 90, 150, 210)                                                 # ...someone in front of it

    def boxes(t):
        return tracked(PERSON, walker, ids=[1, 2])

    assert moves_after(LivenessMeter(("person",)), frames, boxes) == 0


def test_other_labels_are_not_watched():
    frames = [frame(seed, arm_at=110 + 30 * (seed % 2)) for seed in range(10)]
    meter = LivenessMeter(("person",))
    assert meter.update(tracked(PERSON, class_ids=[1]), frames[0], 0.0) == {}
