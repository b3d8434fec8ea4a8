"""Coordinators' pages, one module per part of their week (all share the /coordinator prefix)."""

from delivery.web.coordinator.board import BoardController
from delivery.web.coordinator.overview import COORDINATORS, CoordinatorController
from delivery.web.coordinator.plans import PlanController
from delivery.web.coordinator.referrals import ReferralDeskController
from delivery.web.coordinator.reports import ReportController
from delivery.web.coordinator.roster import RosterController
from delivery.web.coordinator.sheets import SheetsController

CONTROLLERS = [CoordinatorController, RosterController, ReferralDeskController, PlanController,
               SheetsController, BoardController, ReportController]

__all__ = ["CONTROLLERS", "COORDINATORS"]
