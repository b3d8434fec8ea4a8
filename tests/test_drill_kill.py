"""The kill drill in small (R7.1): SIGKILL the server while drivers confirm, restart it, and
every acknowledged confirmation is stored exactly once; the negative control (a server that answers
before it commits) must be caught losing some, or the drill proves nothing. The full drill runs by
hand: scripts/drill_kill.py --db sqlite|postgres --kills 20."""

from __future__ import annotations

import os

import pytest

from scripts import drill_kill

DATABASES = ["sqlite"] + (["postgres"] if os.environ.get("DELIVERY_TEST_POSTGRES_URL") else [])


@pytest.mark.req("R7.1")
@pytest.mark.parametrize("db", DATABASES)
def test_no_acknowledged_confirmation_is_lost_when_the_server_is_killed(db: str) -> None:
    result = drill_kill.run(db, kills=3, drivers=4, stops_each=6)
    assert result["kills"] == 3
    assert result["acknowledged"] == 24  # every stop was confirmed in the end, through the restarts
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["integrity"] == "ok"


def test_the_drill_catches_a_server_that_answers_before_it_commits() -> None:
    result = drill_kill.run("sqlite", kills=3, drivers=4, stops_each=6, ack_before_commit=True)
    assert result["kills"] == 3
    assert result["lost"] > 0
