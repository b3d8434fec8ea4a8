"""Background work the app runs beside requests (geocoding), started and stopped with the app."""

from __future__ import annotations

from litestar import Litestar

from delivery.db import Database
from delivery.geocoding import GeocodingWorker
from delivery.settings import Settings


def start_workers(app: Litestar) -> None:
    settings: Settings = app.state.settings
    database: Database = app.state.database
    if settings.geocoder != "none":
        app.state.geocoding_worker = GeocodingWorker(database, settings)
        app.state.geocoding_worker.start()


def stop_workers(app: Litestar) -> None:
    worker = getattr(app.state, "geocoding_worker", None)
    if worker is not None:
        worker.stop()


def wake_geocoder(app: Litestar) -> None:
    """New addresses were committed: geocode them now rather than at the next poll."""
    worker = getattr(app.state, "geocoding_worker", None)
    if worker is not None:
        worker.wake()
