"""The middleware's adapters and decorators, against the simulators and the real openai SDK."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
import trio.testing
from openai import AsyncOpenAI, OpenAIError

from voiceguard import CallScope, CallScopeError, Reason, current_call_scope
from voiceguard.decisions import Action, Decision
from voiceguard.middleware import (
    GuardConfig,
    GuardedCall,
    GuardedChannel,
    GuardedRealtimeConnection,
    GuardStep,
    call_timer,
)
from voiceguard.protocol import dumps, response_cancel, response_create
from voiceguard.sim import RealtimeSimulator, Reply, TransportClosed
from voiceguard.sim.adapters import WebsocketsConnection


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def next_of(stream: Any, event_type: str) -> Any:
    """The next message of *event_type* from a guarded connection (text or SDK event)."""
    with anyio.fail_after(30):
        async for message in stream:
            kind = message.type if hasattr(message, "type") else json.loads(message)["type"]
            if kind == event_type:
                return message
    raise AssertionError(f"the connection closed before {event_type}")


# ============================================================================================
# A websockets-style connection and a send/receive pair, in memory


@pytest.mark.anyio
async def test_a_guarded_websocket_holds_a_create_until_the_response_is_done() -> None:
    model = RealtimeSimulator(replies=[Reply(text="Hello there.", duration=0.5)])
    decisions: list[Decision] = []
    call = GuardedCall(on_decision=decisions.append)
    async with model.connect(latency=0.02) as transport:
        ws = call.model(WebsocketsConnection(transport))
        await ws.send(dumps(response_create()))
        await next_of(ws, "response.created")
        await ws.send(json.dumps({"type": "response.create"}))  # while the first one runs
        await ws.send(dumps(response_cancel("resp_not_this_one")))
        await next_of(ws, "response.done")
        await next_of(ws, "response.created")  # the held create, sent by the guard
        await next_of(ws, "response.done")
    received = [e.type for e in model.connections[0].received()]
    # The session's defaults let the server cancel and answer: the guard turns that off.
    assert received == ["response.create", "session.update", "response.create"]
    assert model.statistics().errors_total == 0
    create = [d for d in decisions if d.action is Action.CREATE]
    assert [d.verdict.value for d in create] == ["ALLOW", "DEFER", "ALLOW"]
    cancel = [d for d in decisions if d.action is Action.CANCEL]
    assert [d.reason for d in cancel] == [Reason.NO_ACTIVE_RESPONSE]


@pytest.mark.anyio
async def test_a_channel_ends_its_iteration_on_a_clean_close_and_passes_odd_text_on() -> None:
    model = RealtimeSimulator()
    call = GuardedCall()
    async with model.connect() as transport:
        channel = call.channel(transport.send, transport.receive)
        assert isinstance(channel, GuardedChannel)
        await channel.send("this is not JSON")  # not the guards' business: the model says so
        error = json.loads(await next_of(channel, "error"))
        assert error["error"]["code"] is not None or error["error"]["message"]
        await transport.aclose()
        with anyio.fail_after(5):
            assert [m async for m in channel] == []


def test_model_refuses_what_is_not_a_model_connection() -> None:
    with pytest.raises(TypeError, match="takes a model connection"):
        GuardedCall().model(42)


@pytest.mark.anyio
async def test_create_response_needs_the_model_connection_first() -> None:
    with pytest.raises(RuntimeError, match=r"wrap the model connection first"):
        await GuardedCall().create_response()


@pytest.mark.anyio
async def test_create_response_sends_now_or_waits_for_the_conversation() -> None:
    model = RealtimeSimulator(replies=[Reply(text="One.", duration=0.4), Reply(text="Two.")])
    call = GuardedCall()
    async with model.connect(latency=0.02) as transport:
        ws = call.model(WebsocketsConnection(transport))
        assert (await call.create_response(label="first")).allowed
        await next_of(ws, "response.created")
        second = await call.create_response({"instructions": "Say two."}, label="second")
        assert (second.verdict.value, second.reason) == ("DEFER", Reason.RESPONSE_ACTIVE)
        await next_of(ws, "response.done")
        await next_of(ws, "response.done")  # the second one went out by itself
    creates = model.connections[0].received("response.create")
    assert [c.event.get("response") for c in creates] == [None, {"instructions": "Say two."}]


# ============================================================================================
# Decorators


@pytest.mark.anyio
async def test_call_timer_makes_a_timer_of_the_running_call_that_dies_with_it() -> None:
    assert current_call_scope() is None
    fired: list[float] = []
    async with CallScope(call_sid="CA1") as scope:
        assert current_call_scope() is scope

        @call_timer(2.0)
        async def hang_up_fallback() -> None:
            fired.append(anyio.current_time())

        @call_timer(10.0, name="idle")
        def never() -> None:
            fired.append(-1.0)

        assert hang_up_fallback.name == "hang_up_fallback" and never.name == "idle"
        started = anyio.current_time()
        hang_up_fallback.start()
        never.start()

        async def in_a_task() -> None:
            assert current_call_scope() is scope

        scope.start_soon(in_a_task)
        await anyio.sleep(3.0)
    assert fired == [started + 2.0]
    assert scope.pending_timers() == ()
    assert current_call_scope() is None


def test_call_timer_outside_a_call_says_how_to_use_it() -> None:
    with pytest.raises(CallScopeError, match=r"no call scope is running where orphan is decorated"):

        @call_timer(1.0)
        def orphan() -> None: ...


@pytest.mark.anyio
async def test_a_barge_in_handler_runs_for_real_speech_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = GuardedCall(GuardConfig(turn_control=False))
    ran: list[str] = []

    @call.barge_in
    async def on_speech_started(event: dict[str, Any], note: str) -> str:
        ran.append(note)
        return "handled"

    segments = call.guard.engine.segments  # judged by the gate (see test_middleware for how)
    segments.open("item_echo", None).real = False
    segments.open("item_real", None).real = True
    with caplog.at_level(logging.INFO, logger="voiceguard.middleware"):
        assert await on_speech_started({"item_id": "item_echo"}, "echo") is None
        assert await on_speech_started({"item_id": "item_real"}, "real") == "handled"
        assert await on_speech_started({"item_id": "item_never"}, "never") is None
    assert ran == ["real"]
    reasons = [r.getMessage() for r in caplog.records]
    assert any("item_echo was echo or noise" in m for m in reasons)
    assert any("item_never was not judged in time" in m for m in reasons)


@pytest.mark.anyio
async def test_a_barge_in_handler_waits_for_the_judgement() -> None:
    call = GuardedCall()
    ran: list[float] = []

    @call.barge_in
    async def on_speech_started(event: str) -> None:
        ran.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_speech_started, '{"type":"x","item_id":"item_1"}')
        await anyio.sleep(0.3)
        assert ran == []
        call.guard.engine.segments.open("item_1", None).real = True  # the gate decided...
        await call.carry_out(GuardStep())  # ...and the adapter carries out the guard's step
    assert len(ran) == 1


# ============================================================================================
# The openai SDK's realtime connection (asyncio, the real client over loopback)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_the_sdk_connection_guarded_keeps_its_helpers_iteration_and_handlers(
    anyio_backend: str,
) -> None:
    model = RealtimeSimulator(replies=[Reply(text="Hello.", duration=0.3), Reply(text="Again.")])
    decisions: list[Decision] = []
    seen: list[str] = []
    with anyio.fail_after(30):
        async with model.running() as address:
            client = AsyncOpenAI(api_key="test", websocket_base_url=address.base_url)
            call = GuardedCall(on_decision=decisions.append)
            async with call.model(client.realtime.connect(model="gpt-realtime")) as opened:
                conn: GuardedRealtimeConnection = opened
                await conn.response.cancel()  # nothing is active: never sent
                await conn.response.create()
                await next_of(conn, "response.created")
                await conn.response.create(response={"instructions": "Again."})  # held
                once: list[str] = []

                @conn.on("response.done")
                def on_done(event: Any) -> None:
                    seen.append(event.response.status)

                conn.once("response.created", lambda event: once.append(event.type))
                unused: list[str] = []

                def removed(event: Any) -> None:
                    unused.append(event.type)

                conn.on("event", removed)
                conn.off("event", removed)

                async def stop_after_two() -> None:
                    while len(seen) < 2:
                        await anyio.sleep(0.01)
                    await conn.close()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(stop_after_two)
                    await conn.dispatch_events()
    assert seen == ["completed", "completed"]
    assert once == ["response.created"]
    assert unused == []
    received = [e.type for e in model.connections[0].received()]
    assert received == ["response.create", "session.update", "response.create"]
    assert [d.reason for d in decisions if d.action is Action.CANCEL] == [Reason.NO_ACTIVE_RESPONSE]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_dispatch_raises_on_an_error_nobody_handles_as_the_sdk_does(
    anyio_backend: str,
) -> None:
    model = RealtimeSimulator()
    with anyio.fail_after(30):
        async with model.running() as address:
            client = AsyncOpenAI(api_key="test", websocket_base_url=address.base_url)
            call = GuardedCall()
            async with call.model(client.realtime.connect(model="gpt-realtime")) as conn:
                await conn.send({"type": "input_audio_buffer.commit"})  # nothing to commit
                with pytest.raises(OpenAIError, match="WebSocket error"):
                    await conn.dispatch_events()


@pytest.mark.anyio
async def test_a_transport_closed_by_the_model_ends_a_channel_with_an_error() -> None:
    model = RealtimeSimulator()
    call = GuardedCall()
    async with model.connect() as transport:
        channel = call.channel(transport.send, transport.receive)
        await transport.abort()
        with pytest.raises(TransportClosed):
            await channel.recv()


@pytest.mark.anyio
async def test_a_guarded_websocket_sends_a_dict_as_json_text() -> None:
    model = RealtimeSimulator(replies=[Reply(text="Hi.", duration=0.2)])
    call = GuardedCall()
    async with model.connect() as transport:
        ws = call.model(WebsocketsConnection(transport))
        await ws.send({"type": "response.create", "response": {"instructions": "Say hi."}})
        await next_of(ws, "response.done")
    sent = model.connections[0].received("response.create")
    assert [e.event.get("response") for e in sent] == [{"instructions": "Say hi."}]
