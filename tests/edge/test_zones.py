"""Pixel zones must lie in the frame they are used on; the error names the zone, its points and the frame."""

import numpy as np
import pytest

from edge.config import CameraConfig, ZoneConfig
from edge.zones import ZoneOutsideFrame, frame_problems, zone_for_frame


def zone(polygon, coords="pixel", name="plaza") -> ZoneConfig:
    return ZoneConfig(name=name, type="no_vending", polygon=polygon, coords=coords, lat=48.2, lon=16.3)


def camera(*zones: ZoneConfig, name="north") -> CameraConfig:
    return CameraConfig(name=name, source="clip.mp4", zones=list(zones))


INSIDE = [(0, 0), (768, 0), (768, 576), (0, 576)]  # the frame's own corners: the borders belong to it


@pytest.mark.parametrize("polygon, outside", [
    (INSIDE, []),
    ([(10, 10), (900, 40), (500, 500)], [(1, (900, 40))]),
    ([(-1, 10), (100, 10), (100, 577)], [(0, (-1, 10)), (2, (100, 577))]),
    ([(800, 600), (900, 600), (900, 700)], [(0, (800, 600)), (1, (900, 600)), (2, (900, 700))]),
])
def test_a_pixel_zone_with_any_vertex_outside_the_frame_is_refused(polygon, outside):
    if not outside:
        assert zone_for_frame(zone(polygon), 768, 576).polygon.tolist() == [list(p) for p in polygon]
        return
    with pytest.raises(ZoneOutsideFrame) as caught:
        zone_for_frame(zone(polygon), 768, 576)
    assert caught.value.zone == "plaza"
    assert caught.value.points == outside
    assert (caught.value.width, caught.value.height) == (768, 576)


def test_the_error_names_the_zone_the_points_and_the_frame():
    with pytest.raises(ZoneOutsideFrame) as caught:
        zone_for_frame(zone([(10, 10), (900, 40.5), (500, 500)]), 768, 576)
    assert str(caught.value) == "zone 'plaza': point 1 (900, 40.5) lies outside the 768x576 frame"
    two = ZoneOutsideFrame("plaza", [(1, (900, 40)), (2, (-5, 0))], 768, 576).for_camera("north")
    assert str(two) == "camera 'north' zone 'plaza': points 1 (900, 40), 2 (-5, 0) lie outside the 768x576 frame"


def test_relative_zones_always_fit():
    z = zone_for_frame(zone([(0, 0), (1, 0), (1, 1)], coords="relative"), 768, 576)
    np.testing.assert_allclose(z.polygon, [[0, 0], [768, 0], [768, 576]])


def test_frame_problems_name_the_key_path_of_each_zone_that_does_not_fit():
    cameras = [
        camera(zone(INSIDE, name="fits"), zone([(10, 10), (900, 40), (500, 500)], name="wide"), name="north"),
        camera(zone([(0, 0), (1000, 0), (0, 1000)]), name="south"),
    ]
    assert frame_problems(cameras, {"north": (768, 576)}) == [
        "cameras.0.zones.1.polygon: point 1 (900, 40) lies outside the 768x576 frame"]
    assert frame_problems(cameras, {"north": (1920, 1080), "south": (1920, 1080)}) == []
    assert frame_problems(cameras, {}) == []


def test_a_box_cut_off_by_the_bottom_of_the_picture_is_in_a_zone_drawn_to_that_edge():
    z = zone_for_frame(zone([(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)], coords="relative"), 768, 576)
    feet = np.array([[700.0, 576.0], [768.0, 560.0], [600.0, 200.0]])     # on the bottom edge, on the right edge, above the zone
    assert z.contains(feet).tolist() == [True, True, False]
    np.testing.assert_allclose(z.polygon, [[384, 288], [768, 288], [768, 576], [384, 576]])    # as drawn
