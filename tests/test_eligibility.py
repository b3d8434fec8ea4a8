"""The program's eligibility rule, as the clinic sees it."""

import pytest

from delivery.models import HungerAnswer, Outcome
from delivery.referrals.eligibility import ScreeningAnswers, assess

often, sometimes, never = HungerAnswer.often, HungerAnswer.sometimes, HungerAnswer.never


@pytest.mark.parametrize(
    ("worried", "ran_out", "transport", "mobility", "errands", "outcome"),
    [
        (often, never, True, False, False, Outcome.home_delivery),
        (never, sometimes, False, True, False, Outcome.home_delivery),
        (sometimes, sometimes, False, False, True, Outcome.home_delivery),
        (often, often, False, False, False, Outcome.pickup),
        (never, never, True, True, True, Outcome.not_eligible),
    ],
)
def test_outcome_follows_hunger_vital_sign_and_barriers(worried, ran_out, transport, mobility, errands,
                                                        outcome) -> None:
    """Food insecure and a barrier -> delivery; insecure alone -> pick-up; otherwise not eligible."""
    result = assess(ScreeningAnswers(worried, ran_out, transport, mobility, errands))
    assert result.outcome == outcome


def test_reasons_are_plain_words() -> None:
    """Each outcome explains itself in words a clinic can repeat to the patient."""
    delivery = assess(ScreeningAnswers(often, never, True, True))
    assert "no reliable transportation" in delivery.reason and "climbing stairs" in delivery.reason
    refused = assess(ScreeningAnswers(never, never, True, False))
    assert "negative" in refused.reason
