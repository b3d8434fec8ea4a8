"""Responses travel small and are cached only where that is safe: gzip for text, a year for
versioned static files, minutes for our own, never for pages."""

from __future__ import annotations

import gzip

import pytest

from delivery.platform.settings import ROOT

GZIP = {"Accept-Encoding": "gzip"}


def test_versioned_vendor_files_are_cached_for_a_year_and_compressed(client) -> None:
    """htmx's file name carries its version: immutable for a year, and sent gzipped."""
    response = client.get("/static/vendor/htmx-2.0.11.min.js", headers=GZIP)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=31536000, public, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]


@pytest.mark.parametrize("path", ["/static/css/app.css", "/static/js/plan_map.js"])
def test_our_own_static_files_are_cached_briefly(client, path: str) -> None:
    """Our CSS and JS change under the same name: a short max-age, so a release shows up soon."""
    response = client.get(path, headers=GZIP)
    assert response.headers["cache-control"] == "max-age=300, public"
    assert response.headers["content-encoding"] == "gzip"


def test_pages_are_compressed_and_never_stored(client) -> None:
    """A page is gzipped on the wire and still no-store (it may carry patient data)."""
    response = client.get("/login", headers=GZIP)
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "no-store"
    assert "<form" in response.text  # the client decoded it: what a browser does


def test_images_are_not_compressed_again(client) -> None:
    """A PNG is compressed already: gzipping it again only costs time."""
    response = client.get("/static/vendor/leaflet-1.9.4/images/layers.png", headers=GZIP)
    assert response.status_code == 200 and "content-encoding" not in response.headers


def test_raw_bytes_really_are_gzip(client) -> None:
    """What goes on the wire decompresses to the file (so nothing else re-encodes it)."""
    with client.stream("GET", "/static/css/app.css", headers=GZIP) as response:
        raw = b"".join(response.iter_raw())
    assert gzip.decompress(raw) == (ROOT / "static" / "css" / "app.css").read_bytes()
