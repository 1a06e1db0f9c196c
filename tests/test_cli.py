from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voiceguard import __version__
from voiceguard.cli import main
from voiceguard.demo.tour import SCENARIOS, Scenario, run_scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_each_tour_scenario_breaks_the_naive_bridge_and_not_the_guarded_one(
    scenario: Scenario,
) -> None:
    naive = run_scenario(scenario, guarded=False)
    guarded = run_scenario(scenario, guarded=True)
    # If the naive bridge gets it right, the scenario does not show the race it claims to.
    assert sum(naive.server_errors.values()) + naive.creates_after_hang_up > 0
    assert sum(guarded.server_errors.values()) == 0
    assert guarded.creates_after_hang_up == 0
    assert guarded.decisions, "the guards must have refused or held something"


def test_tool_result_during_greeting_is_answered_not_lost() -> None:
    scenario = next(s for s in SCENARIOS if s.name == "tool-during-greeting")
    guarded = run_scenario(scenario, guarded=True)
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
