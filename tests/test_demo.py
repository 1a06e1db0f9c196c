"""``voiceguard demo`` as a user runs it: a subprocess, real sockets on 127.0.0.1, real time.

Every subprocess has a timeout, so a hung demo fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import voiceguard.demo.run as demo_run
from voiceguard import demo
from voiceguard.demo import BridgeMeasures, DemoReport, RunOutcome
from voiceguard.sim import SCENARIOS

#: A short scenario (about 12 s) that the naive bridge always fails: it cancels a done response.
SHORT = "cancel-races-done"
_TIMEOUT = 120.0


def _demo(*args: str, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voiceguard", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_json_of_one_scenario_shows_the_naive_failure_and_a_clean_guarded_bridge() -> None:
    result = _demo("--json", "--scenario", SHORT)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert data["ok"] is True
    assert data["scenarios"] == [SHORT]
    guarded, naive = data["bridges"]["guarded"], data["bridges"]["naive"]
    assert guarded["problems"] == 0
    assert guarded["scenario_violations"] == 0
    assert guarded["model_errors"] == 0
    assert guarded["calls_ended_cleanly"] == guarded["calls"] == 1
    assert guarded["barge_in_latency_ms"]["cleared"] >= 1
    assert naive["model_errors_by_code"].get("response_cancel_not_active", 0) >= 1
    assert naive["scenario_violations"] >= 1
    assert naive["runs_failed"] == 1
    assert {(r["scenario"], r["bridge"]) for r in data["runs"]} == {
        (SHORT, "naive"),
        (SHORT, "guarded"),
    }
    # The progress display goes to stderr, one line per finished run.
    assert "[1/2]" in result.stderr
    assert "[2/2]" in result.stderr


@pytest.mark.parametrize("phone", ["telnyx", "plivo", "vonage"])
def test_the_demo_runs_with_another_phone_provider(phone: str) -> None:
    """Both bridges take the provider's media streams; the guarded one stays clean."""
    result = _demo(
        "--json", "--phone", phone, "--scenario", SHORT, "--scenario", "echo-in-first-seconds"
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    guarded, naive = data["bridges"]["guarded"], data["bridges"]["naive"]
    assert guarded["problems"] == 0
    assert guarded["calls_ended_cleanly"] == guarded["calls"] == 2
    assert naive["model_errors_by_code"].get("response_cancel_not_active", 0) >= 1


def test_full_default_run_prints_the_table_and_exits_by_the_guarded_result() -> None:
    # The one full default run (every scenario, both bridges at once): about 17 s of wall time
    # on a 2-core machine, under the 40 s budget for a single test.
    result = _demo(timeout=180.0)
    out = result.stdout
    for row in (
        "scenario rules broken",
        "false barge-ins",
        "protocol errors from the model",
        "truncations beyond what the caller heard",
        "calls hung up by another call's timer",
        "barge-in reaction latency, median / p95",
        "calls that ended cleanly",
    ):
        assert row in out
    assert "naive: " in out and "runs went wrong" in out  # the naive bridge fails
    assert "hangup-fallback-outlives-call" in out
    clean = "The guarded bridge had no problem in any call." in out
    assert result.returncode == (0 if clean else 1), result.stderr
    assert f"/{2 * len(SCENARIOS)}]" in result.stderr


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["--calls", "0"], "--calls", "from 1 to 20"),
        (["--calls", "many"], "--calls", "from 1 to 20"),
        (["--calls", "21"], "--calls", "from 1 to 20"),
        (["--scenario", "nope"], "--scenario", "cancel-races-done"),
        (["--seed", "-1"], "--seed", "from 0 to"),
        (["--frobnicate"], "--frobnicate", "unrecognized"),
    ],
)
def test_bad_options_exit_2_naming_the_option_and_what_is_allowed(
    args: list[str], option: str, allowed: str
) -> None:
    result = _demo(*args, timeout=60.0)
    assert result.returncode == 2
    assert result.stdout == ""
    assert option in result.stderr
    assert allowed in result.stderr


def test_without_the_server_extra_it_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; "
        "from voiceguard.cli import main; sys.exit(main(['demo']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60.0, check=False
    )
    assert result.returncode == 2
    assert "pip install 'voiceguard[server]'" in result.stderr
    assert "uvicorn" in result.stderr


def _outcome(bridge: str, **changes: Any) -> RunOutcome:
    values: dict[str, Any] = {
        "scenario": SHORT,
        "repetition": 0,
        "bridge": bridge,
        "calls": 1,
        "violations": (),
        "model_errors": {},
        "crossed_cancels": 0,
        "false_barge_ins": 0,
        "truncations_beyond_heard": 0,
        "cross_call_actions": 0,
        "barge_in_latencies": (),
        "barge_ins_without_clear": 0,
        "calls_ended_cleanly": 1,
        **changes,
    }
    return RunOutcome(**values)


def test_measures_add_up_over_runs_and_only_the_guarded_side_decides_ok() -> None:
    outcomes = (
        _outcome("naive", violations=("must not x",), model_errors={"a": 2}),
        _outcome("naive", calls=2, calls_ended_cleanly=1, barge_in_latencies=(0.1, 0.3)),
        _outcome("guarded", barge_in_latencies=(0.2,)),
        _outcome("guarded", barge_in_latencies=(0.4, 0.1, 0.3), crossed_cancels=1),
    )
    report = DemoReport(
        scenarios=(SHORT,), repetitions=2, seed=0, outcomes=outcomes, wall_seconds=1.0
    )
    naive = report.naive
    assert naive == BridgeMeasures.total("naive", outcomes)
    assert (naive.runs, naive.runs_failed, naive.calls) == (2, 2, 3)
    assert naive.problems == 1 + 2 + 1
    assert report.guarded.latency_median == pytest.approx(0.25)
    assert report.guarded.latency_p95 == pytest.approx(0.4)
    assert report.guarded.crossed_cancels == 1
    assert report.ok, "a cancel that crossed response.done is reported, not a problem"
    assert outcomes[0].summary() == "FAILED: 1 rule broken, 2 model errors"
    assert "cancel-races-done #1: must not x; model errors a x2" in report.render()
    assert json.loads(json.dumps(report.to_json()))["bridges"]["naive"]["problems"] == 4


def test_the_run_module_still_gives_every_name_it_held() -> None:
    # voiceguard.demo.run held the whole demo before it was split by concern.
    for name in demo.__all__:
        assert getattr(demo_run, name) is getattr(demo, name)
    assert demo_run.MAX_REPETITIONS == 20
    with pytest.raises(AttributeError):
        demo_run.NoSuchThing  # noqa: B018
