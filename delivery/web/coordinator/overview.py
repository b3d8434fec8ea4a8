"""The coordinator's overview: each program's week at a glance, every item a link to its page."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy import select

from delivery.models import Organization, Role
from delivery.program import partnerships
from delivery.reports import funder
from delivery.reports.figures import week_start
from delivery.reports.glance import glance
from delivery.web.render import DB, page, principal, program_today

COORDINATORS = (Role.coordinator, Role.admin)


class CoordinatorController(Controller):
    path = "/coordinator"

    @get("/", opt={"roles": COORDINATORS}, sync_to_thread=True)
    def overview(self, request: Request, db: DB) -> Template:
        """Today's and the next delivery day, the review queue, the waitlist, drivers' exceptions,
        and this week's early wins (the same figures as the funder report), for each program."""
        programs = principal(request).organizations_with(*COORDINATORS)
        food_banks = db.scalars(select(Organization).where(Organization.id.in_(programs))
                                .order_by(Organization.name)).all()
        sections = []
        quiet = {}  # clinics far below their allocation for weeks: an early conversation
        for food_bank in food_banks:
            today = program_today(request, food_bank)
            monday = week_start(today)
            sections.append((glance(db, food_bank, today),
                             funder.build(db, food_bank, monday, monday + dt.timedelta(days=6))))
            quiet[food_bank.id] = partnerships.quiet_clinics(db, food_bank, today)
        return page(request, "coordinator/overview.html", sections=sections, quiet=quiet)
