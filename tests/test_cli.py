from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voiceguard import __version__
from voiceguard.cli import main
from voiceguard.demo import tour
from voiceguard.demo.tour import RACES, Race, play_race


@pytest.mark.parametrize("race", RACES, ids=lambda r: r.name)
def test_each_tour_race_breaks_the_naive_bridge_and_not_the_guarded_one(race: Race) -> None:
    naive = play_race(race, guarded=False)
    guarded = play_race(race, guarded=True)
    # If the naive bridge gets it right, the race does not show what it claims to.
    assert sum(naive.server_errors.values()) + naive.creates_after_hang_up > 0
    assert sum(guarded.server_errors.values()) == 0
    assert guarded.creates_after_hang_up == 0
    assert guarded.decisions, "the guards must have refused or held something"


def test_tool_result_during_greeting_is_answered_not_lost() -> None:
    race = next(r for r in RACES if r.name == "tool-during-greeting")
    guarded = play_race(race, guarded=True)
    assert guarded.sent["response.create"] == 2
    assert guarded.lost_requests == 0


def test_tour_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--json", "--scenario", "watchdog"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["scenarios"]
    assert row["scenario"] == "watchdog"
    assert row["naive"]["server_errors"] == {"conversation_already_has_active_response": 1}
    assert row["guarded"]["guard_decisions"] == {"SUPPRESS RESPONSE_ACTIVE": 1}


def test_tour_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour"]) == 0
    out = capsys.readouterr().out
    assert "problems: naive 7, guarded 0" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "tour" in capsys.readouterr().out


def test_bad_option_names_the_option_and_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tour", "--scenario", "nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--scenario" in err
    assert "speech-burst" in err


def test_version_as_a_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voiceguard", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == f"voiceguard {__version__}"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SCENARIOS", "RACES"),
        ("Scenario", "Race"),
        ("Outcome", "RaceOutcome"),
        ("run_scenario", "play_race"),
    ],
)
def test_the_tour_names_of_0_1_still_work_with_a_warning(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"tour.{old} is deprecated.*use {new}"):
        value = getattr(tour, old)
    assert value is getattr(tour, new)
    with pytest.raises(AttributeError):
        tour.NoSuchRace  # noqa: B018
