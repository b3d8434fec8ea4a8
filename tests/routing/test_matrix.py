"""Travel matrices: geopy's distances, vectorised; an OSRM-style service on loopback."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from geopy.distance import geodesic, great_circle

from delivery.routing import MatrixError, Point, Travel, build_matrix, travel_from_env
from delivery.routing.matrix import geodesic_km, great_circle_km, osrm_matrix
from tests.osrm_server import osrm_server

OAKLAND = [Point(37.75 + 0.01 * k, -122.18 + 0.013 * (k % 5)) for k in range(12)]


def test_great_circle_matches_geopy():
    """Vectorised great-circle distances equal geopy's great_circle."""
    km = great_circle_km(OAKLAND)
    for i, j in [(0, 5), (3, 11), (7, 2)]:
        expected = great_circle((OAKLAND[i].lat, OAKLAND[i].lon), (OAKLAND[j].lat, OAKLAND[j].lon))
        assert km[i, j] == pytest.approx(expected.km, rel=1e-9)


def test_geodesic_is_within_metres_of_geopy():
    """The vectorised ellipsoidal distance is within 5 m of geopy's geodesic at city scale."""
    km = geodesic_km(OAKLAND)
    for i, j in [(0, 5), (3, 11), (7, 2), (0, 11)]:
        expected = geodesic((OAKLAND[i].lat, OAKLAND[i].lon), (OAKLAND[j].lat, OAKLAND[j].lon))
        assert abs(km[i, j] - expected.km) < 0.005


def test_circuity_and_speed_set_time_and_distance():
    """Road distance is the straight line times circuity; time is that at the speed, rounded up."""
    pair = [Point(37.75, -122.18), Point(37.76, -122.18)]
    m = build_matrix(pair, Travel(circuity=1.5, speed_kmh=36.0))
    straight = great_circle((37.75, -122.18), (37.76, -122.18)).km
    assert m.distances[0, 1] == round(straight * 1.5 * 1000)
    assert m.durations[0, 1] == -(-straight * 1.5 / 36.0 * 3600 // 1)
    assert m.durations[0, 0] == 0


def test_thousand_point_matrix_is_whole_and_true():
    """A 1,000-point matrix is a full integer array whose sampled entries match geopy.

    How fast it is belongs to the benchmark (scripts/bench_matrix.py), not to a timed test."""
    rng = random.Random(1)
    points = [Point(37.7 + rng.random() * 0.1, -122.3 + rng.random() * 0.2) for _ in range(1000)]
    m = build_matrix(points, Travel(method="great_circle", circuity=1.0, speed_kmh=36.0))
    assert m.durations.shape == m.distances.shape == (1000, 1000)
    assert m.durations.dtype.kind == "i"
    for _ in range(20):
        i, j = rng.randrange(1000), rng.randrange(1000)
        metres = great_circle((points[i].lat, points[i].lon), (points[j].lat, points[j].lon)).m
        assert abs(int(m.distances[i, j]) - metres) <= 1


@pytest.fixture
def osrm_url() -> Iterator[str]:
    with osrm_server() as osrm:
        yield osrm.url


def test_osrm_table_service(osrm_url):
    """An OSRM-style table answer becomes the matrix, durations rounded up."""
    m = osrm_matrix(OAKLAND[:4], osrm_url)
    assert m.durations[0, 3] == 182  # ceil(181.5)
    assert m.distances[3, 1] == 1000


def test_env_selects_osrm(osrm_url):
    """DELIVERY_ROUTING_MATRIX=osrm with DELIVERY_OSRM_URL routes the matrix through the service."""
    travel = travel_from_env({"DELIVERY_ROUTING_MATRIX": "osrm", "DELIVERY_OSRM_URL": osrm_url})
    m = build_matrix(OAKLAND[:3], travel)
    assert m.distances[0, 2] == 1000


def test_env_osrm_without_url_is_an_error():
    """Asking for OSRM without a URL says what to set."""
    with pytest.raises(MatrixError, match="DELIVERY_OSRM_URL"):
        travel_from_env({"DELIVERY_ROUTING_MATRIX": "osrm"})


def test_osrm_down_is_a_clear_error():
    """An unreachable service gives a MatrixError naming the URL."""
    with pytest.raises(MatrixError, match=r"127\.0\.0\.1:9"):
        osrm_matrix(OAKLAND[:2], "http://127.0.0.1:9", timeout=2)
