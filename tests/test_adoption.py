"""Adoption: existing bots with voiceguard added, against the simulators' scenario library.

The bridge written like the popular Twilio sample runs every scenario before and after adding
voiceguard (six changed lines): the guarded one must have no protocol error, no false barge-in
and no truncation past what the caller heard, and the unguarded one must show each of those
problems (if it did not, the scenarios would be too weak to prove anything). The other adoption
examples run as a user runs them.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
import trio.testing

from voiceguard.server import serving
from voiceguard.sim import SCENARIOS, CallerSimulator, HangUp, RealtimeSimulator, Reply, Speak
from voiceguard.sim.measures import BridgeCheck, check_bridge

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ECHO_SCENARIOS = ("echo-in-first-seconds", "speech-started-burst")


def load(name: str) -> ModuleType:
    """Import an example as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=EXAMPLES.parent,
    )


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.mark.anyio
async def test_the_guarded_sample_has_no_protocol_error_false_barge_in_or_overlong_truncate() -> (
    None
):
    checks = await check_bridge(load("twilio_sample_guarded").bridge)
    assert [c.scenario for c in checks] == list(SCENARIOS)
    for check in checks:
        assert check.protocol_errors == {}, check
        assert check.false_barge_ins == 0, check
        assert check.truncations_beyond_heard == 0, check
        assert check.violations == (), check  # and every rule of the scenario holds


@pytest.mark.anyio
async def test_the_same_sample_unguarded_shows_every_problem() -> None:
    checks = {c.scenario: c for c in await check_bridge(load("twilio_sample_before").bridge)}
    for name in ECHO_SCENARIOS[:1]:
        assert checks[name].false_barge_ins > 0, checks[name]
    assert sum(sum(c.protocol_errors.values()) for c in checks.values()) > 0
    assert sum(c.truncations_beyond_heard for c in checks.values()) > 0
    assert sum(len(c.violations) for c in checks.values()) > 0


def test_adding_voiceguard_to_the_sample_changes_at_most_fifteen_lines() -> None:
    before = (EXAMPLES / "twilio_sample_before.py").read_text(encoding="utf-8").splitlines()
    after = (EXAMPLES / "twilio_sample_guarded.py").read_text(encoding="utf-8").splitlines()
    changed = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert 0 < len(changed) <= 15, changed


def test_each_sample_checks_itself_with_one_command() -> None:
    before = run_example("examples/twilio_sample_before.py", "--check")
    after = run_example("examples/twilio_sample_guarded.py", "--check")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert "echo-in-first-seconds" in before.stdout
    total = next(line for line in after.stdout.splitlines() if line.startswith("total"))
    assert total.split()[1:4] == ["0", "0", "0"], after.stdout


def test_the_custom_handler_with_decorators_plays_its_scenarios_cleanly() -> None:
    done = run_example("examples/custom_handler_decorators.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[0] == "scenario"
    assert lines[-1].split() == ["total", "0", "0", "0", "0", "broken"], done.stdout


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_the_openai_sdk_bot_is_clean_guarded_and_shows_the_races_unguarded(
    anyio_backend: str,
) -> None:
    example = load("openai_sdk_guarded")
    # The example's own command, in a thread (it runs its own event loop), next to the same
    # bot without voiceguard in this one: both against the real openai SDK client.
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            exit_code: list[int] = []

            async def command() -> None:
                exit_code.append(await anyio.to_thread.run_sync(example.main, []))

            tg.start_soon(command)
            unguarded: list[BridgeCheck] = await example.check(guarded=False)
    assert exit_code == [0]  # every scenario clean, or the example exits 1
    errors = sum(sum(c.protocol_errors.values()) for c in unguarded)
    assert errors > 0
    assert sum(c.false_barge_ins for c in unguarded) > 0


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("TWILIO_AUTH_TOKEN", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_the_reference_server_embedded_in_an_app_serves_its_routes_and_a_call(
    anyio_backend: str, environment: pytest.MonkeyPatch
) -> None:
    model = RealtimeSimulator(
        replies=[
            Reply(text="Thanks for calling Bright Smiles, how can I help?", duration=1.0),
            Reply(text="We are open nine to five.", duration=0.6),
        ]
    )
    caller = CallerSimulator(
        script=[Speak(after_heard=1.0, duration=0.6, text="When are you open?"), HangUp(at=4.0)]
    )
    with anyio.fail_after(30):
        async with model.running() as address:
            environment.setenv("REALTIME_URL", address.url)
            environment.setenv("OPENAI_API_KEY", "sk-test-embedded")
            example = load("reference_server")
            async with serving(example.app) as port:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    assert (await http.get("/")).text == "my app\n"
                    assert (await http.get("/healthz")).status_code == 200
                    twiml = (await http.post("/incoming-call")).text
                    assert "/media-stream" in twiml
                record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
    assert record.heard_between(0.0) >= 1.0  # the greeting, then the answer
    assert model.connections[0].received("response.create")
    assert model.statistics().errors_total == 0
    assert os.environ["REALTIME_URL"] == address.url
