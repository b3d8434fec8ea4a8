"""Request and response bodies (msgspec Structs): closed schemas that name the field at fault."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from delivery.models import AllocationUnit, BoxType, Cadence, Dietary, HungerAnswer, NeedKind, SnapAnswer
from delivery.platform.validation import LINES, ONE_LINE, RuleError
from delivery.timeline.payloads import FieldChange

# The languages a program can serve a patient in (ISO 639 codes, English names), offered on the form;
# a region or script may follow ("es-MX", "zh-Hant"). A code outside the list is refused, not guessed.
LANGUAGES = {"en": "English", "es": "Spanish", "yue": "Cantonese", "zh": "Mandarin", "vi": "Vietnamese",
             "tl": "Tagalog", "ar": "Arabic", "mam": "Mam", "am": "Amharic", "bn": "Bengali",
             "fa": "Persian", "fr": "French", "ht": "Haitian Creole", "hi": "Hindi", "hmn": "Hmong",
             "ja": "Japanese", "km": "Khmer", "ko": "Korean", "lo": "Lao", "mn": "Mongolian",
             "ne": "Nepali", "pa": "Punjabi", "ps": "Pashto", "pt": "Portuguese", "ru": "Russian",
             "so": "Somali", "sw": "Swahili", "th": "Thai", "ti": "Tigrinya", "to": "Tongan",
             "uk": "Ukrainian", "ur": "Urdu", "sm": "Samoan", "my": "Burmese", "quc": "K'iche'",
             "asl": "American Sign Language"}

Name = Annotated[str, Meta(min_length=1, max_length=100, pattern=ONE_LINE)]
ShortText = Annotated[str, Meta(max_length=200, pattern=LINES)]
Note = Annotated[str, Meta(max_length=1000, pattern=LINES)]
Phone = Annotated[str, Meta(min_length=7, max_length=32, pattern=r"^\+?[0-9 ().-]{7,31}$",
                            extra={"hint": "enter a phone number such as +15105550101."})]
Language = Annotated[str, Meta(
    max_length=24, pattern="^(?i:" + "|".join(sorted(LANGUAGES)) + ")(-[A-Za-z0-9]{2,8})?$",
    description="A language the program serves: " + ", ".join(sorted(LANGUAGES)),
    extra={"hint": "use a known language code such as en, es, yue or zh-Hant."})]
Latitude = Annotated[float, Meta(ge=-90, le=90, title="Latitude")]
Longitude = Annotated[float, Meta(ge=-180, le=180, title="Longitude")]
Priority = Annotated[int, Meta(ge=0, le=2, description="0 normal, 1 high, 2 urgent")]
Weekday = Annotated[int, Meta(ge=0, le=6, description="0 = Monday … 6 = Sunday")]
HourMinute = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", max_length=5,
                                 description="HH:MM")]
ID_MAX = 2**31 - 1  # every id column is a 32-bit integer on PostgreSQL
Id = Annotated[int, Meta(ge=1, le=ID_MAX)]


class Closed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error, so a typo is reported instead of silently ignored."""


class AddressIn(Closed, kw_only=True):
    line1: Annotated[str, Meta(min_length=3, max_length=200, pattern=ONE_LINE, title="Street address")]
    unit: Annotated[str, Meta(max_length=40, pattern=LINES, title="Apartment or unit")] | None = None
    city: Annotated[str, Meta(min_length=2, max_length=100, pattern=ONE_LINE, title="City")]
    state: Annotated[str, Meta(min_length=2, max_length=40, pattern=ONE_LINE, title="State")]
    postal_code: Annotated[str, Meta(pattern=r"^[0-9]{5}(-[0-9]{4})?$", max_length=10, title="ZIP code",
                                     extra={"hint": "enter 5 digits, or ZIP+4 such as 94603-1234."})]
    lat: Latitude | None = None
    lon: Longitude | None = None

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise RuleError("Give both lat and lon, or neither (the address is then located on the map).",
                            "lat", "lon")


class PatientIn(Closed, kw_only=True):
    mrn: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", title="MRN",
                             description="The clinic's patient identifier",
                             extra={"hint": "use letters, digits, dots, dashes and underscores only."})]
    given_name: Annotated[Name, Meta(title="First name")]
    family_name: Annotated[Name, Meta(title="Last name")]
    birth_date: Annotated[dt.date, Meta(title="Date of birth")]
    # The fields below may be left out: a new patient then gets the default named in the
    # description (language: en), and a patient already on record keeps what is stored (a
    # re-sent referral with fewer fields never blanks what is known).
    phone: Annotated[Phone, Meta(title="Phone")] | None = None
    language: Annotated[Language, Meta(title="Preferred language")] | None = None
    address: AddressIn
    floor: Annotated[int, Meta(ge=-5, le=200, title="Floor",
                               description="Default 0 (street level)")] | None = None
    elevator: Annotated[bool, Meta(description="Default false")] | None = None
    access_notes: Annotated[str, Meta(max_length=500, pattern=LINES, title="Access notes")] | None = None
    dietary: Annotated[list[Dietary], Meta(max_length=8, description="Default none")] | None = None
    consent_to_share: bool = True
    """The patient agreed to share name, address and phone with the food bank and its drivers.
    A clinic system attests it under its data-sharing agreement; false refuses the referral."""
    do_not_contact: Annotated[bool, Meta(description="Default false")] | None = None
    consent_to_text: Annotated[bool, Meta(description=(
        "Default false. The patient agreed to texts about their deliveries (the day before, on "
        "delivery, after a missed attempt), in their language; they can reply STOP at any time"))
    ] | None = None

    def __post_init__(self) -> None:
        if self.birth_date.year < 1900:
            raise RuleError("Date of birth is before 1900.", "birth_date")
        if not self.consent_to_share:
            raise RuleError("consent_to_share must be true: home delivery shares the patient's "
                            "name, address and phone with the food bank and its drivers.", "consent_to_share")


class ScreeningIn(Closed, kw_only=True):
    hunger_worried: Annotated[HungerAnswer, Meta(title="Hunger question 1 (worried food would run out)")]
    """Within the past 12 months we worried whether our food would run out before we got money to buy more."""
    hunger_ran_out: Annotated[HungerAnswer, Meta(title="Hunger question 2 (food did not last)")]
    """Within the past 12 months the food we bought just didn't last and we didn't have money to get more."""
    transportation_barrier: Annotated[bool, Meta(title="The transportation question")]
    mobility_barrier: Annotated[bool, Meta(title="The carrying and stairs question")]
    """Difficulty carrying groceries or climbing stairs."""
    errands_barrier: bool = False
    """Difficulty doing errands alone."""
    snap_enrolled: Annotated[SnapAnswer, Meta(title="Enrolled in SNAP/CalFresh")] = SnapAnswer.unknown
    """Is the patient enrolled in SNAP/CalFresh (yes, no, unknown)? Food insecure and not enrolled:
    the patient is flagged for the benefits-enrollment staff (unless do_not_contact)."""


NEED_WORDS_MAX = 500


class NeedsIn(Closed, kw_only=True):
    """The patient's answer to "Other than medical care, what do you need to be more healthy?"."""

    picks: Annotated[list[NeedKind], Meta(max_length=len(NeedKind), title="Quick picks")] = []
    words: Annotated[str, Meta(max_length=NEED_WORDS_MAX, pattern=LINES,
                               title="What else the patient needs, in their words")] | None = None


class OrderIn(Closed, kw_only=True):
    """What the clinic asks for; every field has the program's default."""

    boxes: Annotated[int, Meta(ge=1, le=6, title="Boxes")] = 1
    box_type: BoxType = BoxType.standard
    cadence: Cadence = Cadence.weekly
    weekday: Weekday | None = None
    window_start: HourMinute | None = None
    window_end: HourMinute | None = None
    start_date: dt.date | None = None

    def __post_init__(self) -> None:
        if (self.window_start is None) != (self.window_end is None):
            raise RuleError("Give both window_start and window_end, or neither (any time of day).",
                            "window_start", "window_end")
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise RuleError("window_start must be before window_end.", "window_start", "window_end")


class ReferralIn(Closed, kw_only=True):
    patient: PatientIn
    screening: ScreeningIn
    order: OrderIn | None = None
    priority: Priority = 0
    note: Note | None = None
    needs: NeedsIn | None = None
    """What the patient needs besides food and medical care: on the clinic's needs worklist."""
    clinic_id: Id | None = None
    """Needed only when the referring account belongs to more than one clinic."""


class TimelineEvent(msgspec.Struct, kw_only=True):
    """One event of a referral's timeline, oldest first: its kind and payload as data, and the
    sentence a person reads."""

    sequence: int
    kind: str
    at: dt.datetime
    data: dict[str, Any]
    text: str


class ReferralOut(msgspec.Struct, kw_only=True):
    id: int
    status: str
    outcome: str
    reason: str
    order_id: int | None
    patient_id: int
    clinic_id: int
    priority: int
    created_at: dt.datetime
    geocode_status: str
    waitlist_position: int | None = None
    timeline: list[TimelineEvent] | None = None
    changes: list[FieldChange] = []
    """What this request changed in the patient's stored details, before and after (`applied` false:
    proposed to a coordinator for review, for an address a coordinator corrected by hand)."""


class PartnershipIn(Closed, kw_only=True):
    """A clinic partner's agreement as the food bank's admin writes it."""

    allocation: Annotated[int, Meta(ge=0, le=10_000, title="Allocation per week")]
    unit: Annotated[AllocationUnit, Meta(title="What the allocation counts")] = AllocationUnit.new_patients
    delivery_days: Annotated[list[Weekday], Meta(min_length=1, max_length=7, title="Delivery days")]
    days_to_first_box: Annotated[int, Meta(ge=0, le=90, title="Days from referral to first box")]
    food_bank_contact: Annotated[str, Meta(min_length=3, max_length=300, pattern=ONE_LINE,
                                           title="Who to call at the food bank")]
    clinic_contact: Annotated[str, Meta(min_length=3, max_length=300, pattern=ONE_LINE,
                                        title="Who to call at the clinic")]
    starts_on: Annotated[dt.date, Meta(title="Start date")]
    review_on: Annotated[dt.date | None, Meta(title="Review date")] = None

    def __post_init__(self) -> None:
        if self.review_on is not None and self.review_on <= self.starts_on:
            raise RuleError("The review date must come after the start date.", "review_on")


class AllocationOut(msgspec.Struct, kw_only=True):
    """A clinic's referral allocation for the program week holding today (Monday to Sunday)."""

    clinic_id: int
    week_start: dt.date
    week_end: dt.date
    agreed: bool
    """False: no written allocation in force for this clinic; only the program's capacity applies
    (the numbers below are then null)."""
    unit: str | None = None
    """`new_patients` (each referral placed on the program uses one) or `boxes` (its boxes per delivery)."""
    allocation: int | None = None
    used: int | None = None
    remaining: int | None = None
    """What the clinic may still refer onto the program this week, lent allocation included."""
    lent_available: int | None = None
    """Of `remaining`, what other clinics left unused and the food bank lends (0 while lending is off)."""


def parse_time(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None
