"""The middleware does what the reference server does, for bots as users write them.

Each bot here is the popular sample's shape (tests/bots.py) with voiceguard's documented adoption
(``GuardedCall()``, ``call.phone(ws)``, ``call.model(connect(...))``), played against the
simulator's scenario library in virtual time.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import trio.testing
from bots import bot_of

from voiceguard import Action, Reason, Verdict
from voiceguard.decisions import Decision
from voiceguard.middleware import GuardedCall
from voiceguard.sim import SCENARIOS, RealtimeSimulator, Scenario, check_bridge, run_scenario
from voiceguard.sim.adapters import WebsocketsConnection
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.sim.realtime import FunctionCall, Reply


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.mark.anyio
@pytest.mark.parametrize("pcm16", [False, True], ids=["g711", "pcm16-24k"])
async def test_the_scenario_library_passes_whatever_the_models_audio_format(pcm16: bool) -> None:
    checks = await check_bridge(bot_of(pcm16=pcm16))
    assert [c.scenario for c in checks] == list(SCENARIOS)
    broken = {c.scenario: (c.violations, c.problems) for c in checks if c.violations or c.problems}
    assert broken == {}


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["azure", "xai"])
async def test_the_scenario_library_passes_with_every_model_provider(provider: str) -> None:
    """The reference server's scenario library runs for each provider
    (test_server_scenarios.py); so does the middleware's, the bot writing its own session in
    its provider's shape, the model speaking that provider's dialect."""
    checks = await check_bridge(bot_of(provider=provider), provider=provider)
    assert [c.scenario for c in checks] == list(SCENARIOS)
    broken = {c.scenario: (c.violations, c.problems) for c in checks if c.violations or c.problems}
    assert broken == {}


@pytest.mark.anyio
async def test_a_cough_during_the_answer_cancels_nothing_and_the_answer_is_heard() -> None:
    run = await run_scenario(SCENARIOS["cough-during-the-answer"], bot_of())
    (connection,) = run.connections
    assert connection.received("response.cancel") == []
    call = run.calls[0]
    assert call.clears, "the guard paused the bot on the phone at the cough"
    assert call.heard_between(call.spoke[0][1]) >= 0.95 * 8.0
    assert run.violations() == ()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("delay", "outcome"),
    [
        # The bot's watchdog asks while the lost create is still in flight: its create is held
        # and goes as the turn's one re-send when the first counts as lost (3 s).
        (2.5, (Verdict.DEFER, Reason.CREATE_IN_FLIGHT)),
        # It asks after the guard's re-send went: held, then dropped once the answer starts.
        (3.02, (Verdict.SUPPRESS, Reason.TURN_ANSWERED)),
    ],
)
async def test_a_dropped_response_with_the_bots_own_watchdog_is_sent_again_once(
    delay: float, outcome: tuple[Verdict, Reason]
) -> None:
    calls: list[GuardedCall] = []
    bot = bot_of(watchdog=delay, calls=calls)
    run = await run_scenario(SCENARIOS["watchdog-lost-response"], bot)
    (connection,) = run.connections
    # The greeting, the turn's create (lost), and exactly one re-send, whoever sent it.
    assert len(connection.received("response.create")) == 3
    assert run.simulator.statistics().responses_lost == 1
    assert run.violations() == ()
    (call,) = calls
    assert call.guard.creates.statistics().count(*outcome) == 1


@pytest.mark.anyio
async def test_a_confirmed_barge_in_clears_the_phone_even_when_the_bots_handler_would_not() -> None:
    run = await run_scenario(SCENARIOS["truncate-long-buffered-audio"], bot_of(clears=False))
    call = run.calls[0]
    assert call.clears, "the guard cleared the phone itself"
    assert call.heard_between(call.clears[0] + 0.1) <= 0.05, "nothing of the answer after it"
    assert run.violations() == ()


@pytest.mark.anyio
async def test_an_append_the_model_would_refuse_never_reaches_it() -> None:
    model = RealtimeSimulator()
    decisions: list[Decision] = []
    call = GuardedCall(on_decision=decisions.append)
    async with model.connect() as transport:
        ws = call.model(WebsocketsConnection(transport))
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "not base64!"}))
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "//8="}))  # fine
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": 3}))
        await anyio.sleep(0.5)
    received = [e.event for e in model.connections[0].received()]
    assert received == [{"type": "input_audio_buffer.append", "audio": "<2 bytes>"}]
    assert model.statistics().errors_total == 0
    refused = [d for d in decisions if d.action is Action.SEND]
    assert [(d.verdict, d.reason) for d in refused] == [(Verdict.SUPPRESS, Reason.MALFORMED)] * 2
    assert refused[0].detail.startswith("input_audio_buffer.append: field 'audio':")
    assert "conversation.item.truncate: field 'item_id'" in refused[1].detail
    assert call.guard.send_statistics().count(Verdict.SUPPRESS, Reason.MALFORMED) == 2


@pytest.mark.anyio
async def test_a_bot_that_answers_a_slow_tool_itself_gets_one_answer_and_no_refusal() -> None:
    """The tool scenario through the middleware: the model calls a tool; the bot works on it for
    3 s while the caller waits in silence, then sends its result and a ``response.create``: it
    goes once, after the call's response is done, and the model never refuses one."""
    scenario = Scenario(
        name="slow-tool",
        title="a tool that takes 3 s",
        description="The caller asks; the model calls a tool; the bot answers it 3 s later.",
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                Reply(text="Hello, how can I help?", duration=1.0),
                Reply(
                    text="",
                    duration=0.0,
                    function_call=FunctionCall(name="lookup_order", arguments='{"order_id": 42}'),
                ),
                Reply(text="Your order arrives tomorrow.", duration=1.5),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[Speak(at=2.0, duration=0.8), HangUp(at=9.5)]
        ),
    )
    run = await run_scenario(scenario, bot_of(tool_seconds=3.0))
    (connection,) = run.connections
    outputs = connection.received("conversation.item.create")
    creates = connection.received("response.create")
    assert len(outputs) == 1
    # The greeting, the caller's turn (answered by the guard) and the bot's after its tool.
    assert len(creates) == 3, [e.type for e in connection.received()]
    assert creates[-1].time - outputs[0].time < 0.1
    assert outputs[0].time - creates[1].time >= 3.0
    assert connection.errors == [], connection.errors
    call = run.calls[0]
    assert call.protocol_errors == []
    assert call.heard_between(outputs[0].time - call.started_at) >= 1.4, "the answer was heard"
    assert run.violations() == ()


@pytest.mark.anyio
@pytest.mark.parametrize("phone", ["telnyx", "plivo"])
async def test_the_scenario_library_passes_with_another_phone_provider(phone: str) -> None:
    """The reference server's scenario library runs for each phone provider
    (test_server_scenarios.py); so does the middleware's, the bot speaking its provider's words
    to ``call.phone(ws, phone=...)``, the guards reading them and writing their own."""
    checks = await check_bridge(bot_of(phone=phone), phone=phone)
    assert [c.scenario for c in checks] == list(SCENARIOS)
    broken = {c.scenario: (c.violations, c.problems) for c in checks if c.violations or c.problems}
    assert broken == {}
