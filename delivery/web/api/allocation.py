"""The clinic's referral allocation this week, for clinic systems to show before staff refer."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter

from delivery.models import Organization, Role
from delivery.program import allocations, partnerships
from delivery.referrals.schemas import ID_MAX, AllocationOut
from delivery.web.api.referrals import referring_clinic
from delivery.web.errors import error_responses
from delivery.web.render import DB, principal, program_today

# Bounded in the OpenAPI document (R4.2): 0 is the caller's own clinic.
ClinicChoice = Annotated[int, QueryParameter(ge=0, le=ID_MAX,
                                             description="A clinic you refer for; 0: your own")]

class AllocationApi(Controller):
    path = "/api/v1/allocation"
    tags = ["referrals"]
    security = [{"BearerToken": []}]

    @get("/", opt={"roles": (Role.clinic_staff,)}, sync_to_thread=True, responses=error_responses(404, 422),
         summary="The clinic's referral allocation this week",
         description="What the caller's clinic may still refer onto the program in the program week "
                     "holding today (Monday to Sunday, the program's time zone), under its written "
                     "agreement with the food bank. A referral beyond it is waitlisted even when the "
                     "program has room, unless the food bank lends other clinics' unused allocation. "
                     "`clinic_id` only for accounts that refer for several clinics.")
    def get_allocation(self, request: Request, db: DB,
                       clinic_id: ClinicChoice = 0) -> AllocationOut:
        clinic = db.get(Organization, referring_clinic(principal(request), clinic_id or None))
        food_bank = db.get(Organization, clinic.food_bank_id) if clinic and clinic.food_bank_id else None
        if clinic is None or food_bank is None:
            raise NotFoundException("Your clinic is not part of a program yet.")
        today = program_today(request, food_bank)
        monday, sunday = allocations.week_of(today)
        left = partnerships.allowance(db, food_bank, clinic.id, today)
        if left is None:
            return AllocationOut(clinic_id=clinic.id, week_start=monday, week_end=sunday, agreed=False)
        return AllocationOut(clinic_id=clinic.id, week_start=monday, week_end=sunday, agreed=True,
                             unit=left.unit, allocation=left.allocation, used=left.used,
                             remaining=left.remaining, lent_available=left.lendable)
