"""Left-object finder on hand-built scenes: ghosts heal, hidden objects are held, light changes are not objects."""

import numpy as np
import pytest

from edge.config import StaticObjectConfig
from edge.staticobjects import StaticObjectFinder, _masked_median
from edge.thumbnail import thumbnail

ROAD = 120
OBJECT = (300, 200, 340, 230)          # x1, y1, x2, y2 in frame pixels (640 x 480)
NOBODY = np.zeros((0, 4), np.float32)


def scene(*rectangles, brightness: int = 0, seed: int = 0, shade: int = 30) -> np.ndarray:
    """A textured road with dark rectangles (objects) on it; a light one (a person) last when shade is given."""
    rng = np.random.default_rng(seed)
    image = np.full((480, 640, 3), ROAD + brightness, np.int16) + rng.integers(-3, 4, (480, 640, 1))
    for n, (x1, y1, x2, y2) in enumerate(rectangles):
        image[y1:y2, x1:x2] = (shade if n == len(rectangles) - 1 and len(rectangles) > 1 else 30) + brightness
    return image.clip(0, 255).astype(np.uint8)


def run(finder, frames, movers=lambda t: NOBODY):
    """frames: (t_s, image); returns the blob boxes per look."""
    out = []
    for t, image in frames:
        blobs = finder.update(thumbnail(image), t, movers(t), NOBODY, np.zeros(0, np.float32))
        out.append((t, [b.xyxy for b in blobs]))
    return out


def finder(**changes) -> StaticObjectFinder:
    return StaticObjectFinder(StaticObjectConfig(**changes))


def seen(looks, since=0.0, until=1e9):
    return [t for t, boxes in looks if boxes and since <= t <= until]


def test_an_object_left_on_the_road_is_found_where_it_lies():
    looks = run(finder(), [(t, scene(OBJECT) if t >= 10 else scene()) for t in range(40)])
    assert seen(looks) and min(seen(looks)) <= 16
    x1, y1, x2, y2 = looks[-1][1][0]
    assert abs(x1 - OBJECT[0]) < 12 and abs(y2 - OBJECT[3]) < 12


def test_someone_who_stood_there_at_start_up_leaves_a_ghost_that_heals():
    person = (100, 100, 130, 180)
    # Not detected (no mover box), so the start-up scene has them in it; they walk off at 8 s.
    looks = run(finder(), [(t, scene(person) if t < 8 else scene()) for t in range(60)])
    assert seen(looks) == []


def test_people_detected_at_start_up_are_left_out_of_the_empty_scene():
    def person(t):               # walks slowly across the road, detected, during the whole start-up
        x = int(100 + 12 * t)
        return np.array([[x, 100, x + 30, 180]], np.float32)

    frames = [(t * 0.2, scene(tuple(person(t * 0.2)[0].astype(int)))) for t in range(26)]
    f = finder()
    run(f, frames, movers=person)
    assert not f.warming_up
    assert float(np.abs(f._long - thumbnail(scene()).grey).max()) < 10


def test_an_object_hidden_by_passers_by_is_held_and_comes_back_in_place():
    hider = np.array([[290, 150, 350, 240]], np.float32)

    def hidden(t):
        return 20 <= t < 35

    frames = [(t, scene(OBJECT, (290, 150, 350, 240), shade=200) if hidden(t) else scene(OBJECT) if t >= 5
               else scene()) for t in range(60)]
    looks = run(finder(), frames, movers=lambda t: hider if hidden(t) else NOBODY)
    assert seen(looks, 20, 34) == []                   # hidden: neither reported nor dropped
    before = [boxes for t, boxes in looks if 12 <= t < 20][-1]
    after = [boxes for t, boxes in looks if t >= 36]
    assert after and all(boxes == before for boxes in after)   # the same held box


def test_an_object_taken_away_while_hidden_is_dropped_when_seen_gone():
    hider = np.array([[290, 150, 350, 240]], np.float32)
    frames = [(t, scene() if t >= 25 else scene(OBJECT) if t >= 5 else scene()) for t in range(45)]
    frames = [(t, scene((290, 150, 350, 240)) if 20 <= t < 25 else image) for t, image in frames]
    looks = run(finder(), frames, movers=lambda t: hider if 20 <= t < 25 else NOBODY)
    assert seen(looks, 5, 19) and seen(looks, 27) == []


def test_an_object_hidden_longer_than_occlusion_s_is_dropped():
    hider = np.array([[290, 150, 350, 240]], np.float32)
    f = finder(occlusion_s=5.0)
    frames = [(t, scene(OBJECT, (290, 150, 350, 240), shade=200) if t >= 20 else scene(OBJECT) if t >= 5
               else scene()) for t in range(40)]
    run(f, frames, movers=lambda t: hider if t >= 20 else NOBODY)
    assert [h for h in f._held if h.first_s < 20] == []        # only what the one standing there brought in


def test_an_object_next_to_whoever_brought_it_is_not_yet_left():
    bringer = np.array([[342, 150, 372, 232]], np.float32)   # right beside the object
    frames = [(t, scene(OBJECT, (342, 150, 372, 232)) if t < 30 else scene(OBJECT)) for t in range(5, 45)]
    frames = [(t, scene()) for t in range(5)] + frames
    looks = run(finder(), frames, movers=lambda t: bringer if t < 30 else NOBODY)
    assert seen(looks, 0, 29) == [] and seen(looks, 31)


def paved_scene(gain: float) -> np.ndarray:
    """Dark asphalt with light paving stones: a change of exposure moves the stones far more than the asphalt."""
    image = np.full((480, 640, 3), 40, np.float32)
    for y in range(20, 480, 120):
        for x in range(20, 640, 120):
            image[y:y + 40, x:x + 40] = 150
    return (image * gain).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("gain", [0.75, 1.3])
def test_a_change_of_exposure_is_not_an_object(gain):
    looks = run(finder(), [(t, paved_scene(gain if t >= 15 else 1.0)) for t in range(50)])
    assert seen(looks) == []


@pytest.mark.parametrize("shape, found", [
    ([(560, 300, 626, 330), (626, 311, 638, 319)], True),   # a sack whose tied end reaches to 2 px from the edge
    ([(600, 200, 640, 400)], False),     # the front of something larger, cut off by the edge along its whole height
])
def test_a_thing_by_the_picture_edge_is_found_a_thing_running_out_of_it_is_not(shape, found):
    looks = run(finder(), [(t, scene(*shape) if t >= 10 else scene()) for t in range(40)])
    assert bool(seen(looks)) == found


def test_an_object_that_lands_in_two_steps_is_held_whole():
    # The near end of a cloth lies still first (whoever drops it still holds the rest); a few seconds later all of it.
    part, whole = (300, 220, 330, 230), (280, 200, 380, 230)
    looks = run(finder(), [(t, scene() if t < 10 else scene(part) if t < 14 else scene(whole)) for t in range(45)])
    x1, y1, x2, y2 = looks[-1][1][0]
    assert abs(x1 - whole[0]) < 12 and abs(x2 - whole[2]) < 12 and abs(y1 - whole[1]) < 12


def test_an_object_whose_picture_caught_a_passer_by_is_not_taken_for_gone():
    # An undetected passer-by's leg stands on the object's left end for its first 5 s: its picture,
    # taken when it is found, has the leg in it; once the leg has gone it must not count as removed.
    leg = (300, 190, 325, 232)
    frames = [(t, scene(OBJECT, leg, shade=250) if 10 <= t <= 14 else scene(OBJECT) if t > 14 else scene())
              for t in range(45)]
    looks = seen(run(finder(), frames))
    assert looks and looks == list(range(looks[0], 45))


def test_an_object_put_down_in_the_first_seconds_after_start_is_found():
    # Warm-up is 5 s; the object is there from 1 s on, so it fills most of the warm-up frames.
    frames = [(t / 5, scene(OBJECT) if t >= 5 else scene()) for t in range(0, 75)]
    looks = run(finder(), frames)
    assert seen(looks) and min(seen(looks)) <= 12


@pytest.mark.parametrize("count", [1, 2, 3, 6, 25, 40])
def test_start_up_median_counts_only_the_samples_free_of_people(count):
    rng = np.random.default_rng(count)
    frames = rng.integers(0, 256, (count, 12, 16), dtype=np.uint8)
    usable = rng.random((count, 12, 16)) > 0.4
    usable[:, 0, 0] = False                       # a pixel never free: median of every sample
    usable[:, 0, 1] = np.arange(count) == 0       # free once: that sample
    expected = np.nanmedian(np.where(usable, frames, np.nan), axis=0)
    never_free = ~usable.any(axis=0)
    expected[never_free] = np.median(frames[:, never_free], axis=0)
    median = _masked_median(frames, usable)
    assert median.dtype == np.float32
    np.testing.assert_array_equal(median, expected.astype(np.float32))
