"""Coordinators' pages, one module per part of their week (all share the /coordinator prefix)."""

from delivery.web.coordinator.overview import COORDINATORS, CoordinatorController
from delivery.web.coordinator.plans import PlanController
from delivery.web.coordinator.roster import RosterController

CONTROLLERS = [CoordinatorController, RosterController, PlanController]

__all__ = ["CONTROLLERS", "COORDINATORS"]
