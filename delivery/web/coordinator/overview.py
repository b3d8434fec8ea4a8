"""Coordinators' pages: the program at a glance, the review queue, the waitlist."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy import func, select

from delivery.models import Order, OrderStatus, Organization, ReviewItem, Role
from delivery.reports import funder
from delivery.reports.figures import week_start
from delivery.web.render import DB, page, principal, program_today

COORDINATORS = (Role.coordinator, Role.admin)


class CoordinatorController(Controller):
    path = "/coordinator"

    @get("/", opt={"roles": COORDINATORS}, sync_to_thread=True)
    def overview(self, request: Request, db: DB) -> Template:
        """What needs a coordinator today: open review items and the waitlist."""
        programs = principal(request).organizations_with(*COORDINATORS)
        food_banks = db.scalars(select(Organization).where(Organization.id.in_(programs))).all()
        open_reviews = db.scalar(select(func.count(ReviewItem.id)).where(
            ReviewItem.food_bank_id.in_(programs), ReviewItem.resolved_at.is_(None)))
        waiting = db.scalar(select(func.count(Order.id)).where(
            Order.food_bank_id.in_(programs), Order.status == OrderStatus.waitlisted))
        # Early wins: this week so far, from the same figures as the funder report.
        wins = []
        for food_bank in food_banks:
            monday = week_start(program_today(request, food_bank))
            wins.append(funder.build(db, food_bank, monday, monday + dt.timedelta(days=6)))
        return page(request, "coordinator/overview.html", food_banks=food_banks,
                    open_reviews=open_reviews, waiting=waiting, early_wins=wins)
