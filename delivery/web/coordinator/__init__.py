"""Coordinators' pages, one module per part of their week (all share the /coordinator prefix)."""

from delivery.web.coordinator.overview import COORDINATORS, CoordinatorController

CONTROLLERS = [CoordinatorController]

__all__ = ["CONTROLLERS", "COORDINATORS"]
