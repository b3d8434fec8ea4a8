"""Who gets home delivery: the program's eligibility rule as a plain function."""

from __future__ import annotations

from dataclasses import dataclass

from delivery.models import HungerAnswer, Outcome, Screening


@dataclass(frozen=True)
class ScreeningAnswers:
    """The screening questions a referral carries (Hunger Vital Sign, transport, mobility)."""

    hunger_worried: HungerAnswer
    hunger_ran_out: HungerAnswer
    transportation_barrier: bool
    mobility_barrier: bool
    errands_barrier: bool = False

    @property
    def food_insecure(self) -> bool:
        """Hunger Vital Sign: positive when either item is 'often' or 'sometimes' true."""
        positive = {HungerAnswer.often, HungerAnswer.sometimes}
        return self.hunger_worried in positive or self.hunger_ran_out in positive

    @property
    def barriers(self) -> list[str]:
        found = []
        if self.transportation_barrier:
            found.append("no reliable transportation")
        if self.mobility_barrier:
            found.append("difficulty carrying groceries or climbing stairs")
        if self.errands_barrier:
            found.append("difficulty doing errands alone")
        return found


def answers_of(screening: Screening) -> ScreeningAnswers:
    """A stored screening's answers, for the rules."""
    return ScreeningAnswers(HungerAnswer(screening.hunger_worried), HungerAnswer(screening.hunger_ran_out),
                            screening.transportation_barrier, screening.mobility_barrier,
                            screening.errands_barrier)


@dataclass(frozen=True)
class Eligibility:
    outcome: Outcome
    reason: str


def assess(answers: ScreeningAnswers) -> Eligibility:
    """Food insecure AND a transport or mobility barrier -> home delivery; else a clear outcome."""
    if not answers.food_insecure:
        return Eligibility(Outcome.not_eligible,
                           "The Hunger Vital Sign screen is negative: neither food item was "
                           "answered often or sometimes true.")
    barriers = answers.barriers
    if not barriers:
        return Eligibility(Outcome.pickup,
                           "Food insecure, with no transportation or mobility barrier: "
                           "referred to pick up boxes at the nearest depot.")
    return Eligibility(Outcome.home_delivery,
                       "Food insecure, with " + " and ".join(barriers) + ": home delivery.")
