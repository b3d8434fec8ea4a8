"""Travel matrices: straight-line distances (vectorised, geopy's Earth) or an OSRM-style service.

A matrix for 1,000 points is a few numpy operations, not 10⁶ geopy calls; the
geodesic variant uses Lambert's ellipsoidal correction to the great-circle
distance on geopy's WGS-84 ellipsoid (within a few metres of geopy's
``geodesic`` at city scale, which a test checks).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from geopy.distance import EARTH_RADIUS, ELLIPSOIDS

from delivery.routing.model import Matrix, Point, Travel


class MatrixError(RuntimeError):
    """The travel matrix could not be built (bad configuration or service failure)."""


@dataclass(frozen=True, slots=True, eq=False)
class TravelMatrix:
    """Durations (s) and distances (m) between ``points``, as int64 arrays."""

    points: tuple[Point, ...]
    durations: np.ndarray
    distances: np.ndarray

    def index(self) -> dict[Point, int]:
        """Row of each point."""
        return {point: i for i, point in enumerate(self.points)}

    @classmethod
    def from_matrix(cls, matrix: Matrix) -> TravelMatrix:
        n = len(matrix.points)
        durations = np.asarray(matrix.durations, dtype=np.int64)
        distances = np.asarray(matrix.distances, dtype=np.int64)
        if durations.shape != (n, n) or distances.shape != (n, n):
            raise MatrixError(f"matrix: durations and distances must both be {n} x {n}")
        if (durations < 0).any() or (distances < 0).any():
            raise MatrixError("matrix: durations and distances must not be negative")
        return cls(tuple(matrix.points), durations, distances)


def _radians(points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    coords = np.array([(p.lat, p.lon) for p in points], dtype=np.float64).reshape(-1, 2)
    return np.radians(coords[:, 0]), np.radians(coords[:, 1])


def great_circle_km(points: Sequence[Point], radius_km: float = EARTH_RADIUS) -> np.ndarray:
    """Pairwise great-circle distances in km (haversine), as geopy's ``great_circle``."""
    lat, lon = _radians(points)
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
    return 2 * radius_km * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def geodesic_km(points: Sequence[Point], ellipsoid: str = "WGS-84") -> np.ndarray:
    """Pairwise ellipsoidal distances in km (Lambert's formula on geopy's ellipsoid)."""
    major, _minor, flattening = ELLIPSOIDS[ellipsoid]
    lat, lon = _radians(points)
    beta = np.arctan((1 - flattening) * np.tan(lat))  # reduced latitudes
    sb, cb = np.sin(beta), np.cos(beta)
    dlon = lon[:, None] - lon[None, :]
    cos_sigma = sb[:, None] * sb[None, :] + cb[:, None] * cb[None, :] * np.cos(dlon)
    sigma = np.arccos(np.clip(cos_sigma, -1.0, 1.0))
    p = (beta[:, None] + beta[None, :]) / 2
    q = (beta[None, :] - beta[:, None]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (sigma - np.sin(sigma)) * (np.sin(p) * np.cos(q)) ** 2 / np.cos(sigma / 2) ** 2
        y = (sigma + np.sin(sigma)) * (np.cos(p) * np.sin(q)) ** 2 / np.sin(sigma / 2) ** 2
    correction = np.nan_to_num(x + y, nan=0.0, posinf=0.0, neginf=0.0)
    return major * (sigma - flattening / 2 * correction)


def straight_line_matrix(
    points: Sequence[Point],
    *,
    method: str = "great_circle",
    circuity: float = 1.3,
    speed_kmh: float = 30.0,
) -> TravelMatrix:
    """Road distance = straight line x ``circuity``; time at ``speed_kmh``, rounded up."""
    if method == "great_circle":
        km = great_circle_km(points)
    elif method == "geodesic":
        km = geodesic_km(points)
    else:
        raise MatrixError(f"unknown straight-line method {method!r}: use great_circle or geodesic")
    if circuity <= 0 or speed_kmh <= 0:
        raise MatrixError("circuity and speed_kmh must be positive")
    road_km = km * circuity
    distances = np.rint(road_km * 1000).astype(np.int64)
    durations = np.ceil(road_km / speed_kmh * 3600 - 1e-9).astype(np.int64)
    np.fill_diagonal(durations, 0)
    np.fill_diagonal(distances, 0)
    return TravelMatrix(tuple(points), durations, distances)


def osrm_matrix(points: Sequence[Point], url: str, *, timeout: float = 30.0) -> TravelMatrix:
    """Ask an OSRM-style ``/table/v1/driving`` service for durations and distances."""
    coords = ";".join(f"{p.lon:.6f},{p.lat:.6f}" for p in points)
    query = f"{url.rstrip('/')}/table/v1/driving/{coords}?annotations=duration,distance"
    try:
        with urllib.request.urlopen(query, timeout=timeout) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MatrixError(f"OSRM table request to {url} failed: {exc}") from exc
    if body.get("code") != "Ok":
        raise MatrixError(f"OSRM table service answered {body.get('code')!r}: {body.get('message')}")
    n = len(points)
    try:
        raw_durations = np.array(body["durations"], dtype=np.float64)
        raw_distances = np.array(body["distances"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise MatrixError("OSRM answer lacks durations and distances tables") from exc
    if raw_durations.shape != (n, n) or raw_distances.shape != (n, n):
        raise MatrixError(f"OSRM answer is not {n} x {n}")
    # OSRM gives null for unroutable pairs; make them unusable rather than free.
    unroutable = 10 * 24 * 3600
    durations = np.ceil(np.nan_to_num(raw_durations, nan=unroutable)).astype(np.int64)
    distances = np.rint(np.nan_to_num(raw_distances, nan=1e9)).astype(np.int64)
    return TravelMatrix(tuple(points), durations, distances)


def travel_from_env(env: Mapping[str, str] | None = None, base: Travel | None = None) -> Travel:
    """Apply ``DELIVERY_ROUTING_MATRIX`` (great_circle, geodesic, osrm) and ``DELIVERY_OSRM_URL``."""
    env = os.environ if env is None else env
    base = Travel() if base is None else base
    method = env.get("DELIVERY_ROUTING_MATRIX", "").strip().lower() or base.method
    url = env.get("DELIVERY_OSRM_URL") or base.osrm_url
    if method == "osrm" and not url:
        raise MatrixError("DELIVERY_ROUTING_MATRIX=osrm needs DELIVERY_OSRM_URL")
    return Travel(method=method, circuity=base.circuity, speed_kmh=base.speed_kmh, osrm_url=url)


def build_matrix(points: Sequence[Point], travel: Travel | None = None) -> TravelMatrix:
    """The matrix between ``points`` as ``travel`` says (default: great circle x 1.3 at 30 km/h)."""
    travel = Travel() if travel is None else travel
    if travel.method == "osrm":
        if not travel.osrm_url:
            raise MatrixError("travel method osrm needs osrm_url")
        return osrm_matrix(points, travel.osrm_url)
    return straight_line_matrix(
        points, method=travel.method, circuity=travel.circuity, speed_kmh=travel.speed_kmh
    )


def euclidean(points: Sequence[Point]) -> np.ndarray:
    """Pairwise Euclidean distances of planar points (``lat`` = x, ``lon`` = y)."""
    xy = np.array([(p.lat, p.lon) for p in points], dtype=np.float64).reshape(-1, 2)
    return np.hypot(xy[:, 0, None] - xy[None, :, 0], xy[:, 1, None] - xy[None, :, 1])


__all__ = [
    "MatrixError",
    "TravelMatrix",
    "build_matrix",
    "euclidean",
    "geodesic_km",
    "great_circle_km",
    "osrm_matrix",
    "straight_line_matrix",
    "travel_from_env",
]
