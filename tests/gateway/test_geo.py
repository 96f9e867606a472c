"""Distances, polygons and the neighbour grid the lead book searches."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dedupe.geo import Grid, haversine_m, inside_polygon


@given(
    radius=st.floats(5, 500),
    lat=st.floats(-85, 85),
    lon=st.floats(-179, 179),
    offsets=st.lists(st.tuples(st.floats(-0.02, 0.02), st.floats(-0.05, 0.05)), min_size=1, max_size=30),
)
@settings(max_examples=200, deadline=None)
def test_the_grid_finds_everything_within_the_radius(radius, lat, lon, offsets):
    grid: Grid[int] = Grid(radius)
    places = {}
    for index, (dlat, dlon) in enumerate(offsets):
        places[index] = (max(-89.0, min(89.0, lat + dlat)), lon + dlon)
        grid.put(index, *places[index])
    near = set(grid.near(lat, lon))
    within = {i for i, (a, b) in places.items() if haversine_m(lat, lon, a, b) <= radius}
    assert within <= near


def test_moving_and_removing_items():
    grid: Grid[str] = Grid(30)
    grid.put("a", 48.2085, 16.3731)
    grid.put("a", 48.3085, 16.3731)  # 11 km away now
    assert "a" not in set(grid.near(48.2085, 16.3731))
    assert "a" in set(grid.near(48.3085, 16.3731))
    grid.remove("a")
    assert len(grid) == 0 and not set(grid.near(48.3085, 16.3731))


SQUARE = [(48.0, 16.0), (48.0, 16.1), (48.1, 16.1), (48.1, 16.0)]


@pytest.mark.parametrize("lat, lon, inside", [(48.05, 16.05, True), (48.2, 16.05, False), (48.05, 15.9, False)])
def test_inside_polygon(lat, lon, inside):
    assert inside_polygon(lat, lon, SQUARE) is inside


def test_inside_a_concave_polygon():
    u_shape = [(0, 0), (0, 3), (3, 3), (3, 2), (1, 2), (1, 1), (3, 1), (3, 0)]
    assert inside_polygon(0.5, 1.5, u_shape)
    assert not inside_polygon(1.5, 1.5, u_shape)  # in the notch
