"""Two small Twilio <-> Realtime bridges for the simulator tests.

``naive_bridge`` is the twilio-samples bridge in miniature (server VAD defaults, barge-in by
``clear`` plus a wall-clock truncate, no response tracking): the scenarios must catch its
mistakes. ``careful_bridge`` takes full turn control and tracks the response lifecycle, playback
marks and hang-up in one call scope: the scenarios must pass with it. Neither is the reference
handler; they exist so that the scenario library is tested against a bridge that fails and one
that passes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio

from voiceguard.protocol import (
    AudioDelta,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    MarkPlayed,
    MediaReceived,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    StreamStarted,
    StreamStopped,
    clear_message,
    dumps,
    end_call_tool,
    input_audio_append,
    item_truncate,
    mark_message,
    media_message,
    parse_realtime_event,
    parse_twilio_message,
    response_cancel,
    response_create,
    session_update,
)
from voiceguard.sim.transport import Transport, TransportClosed

ConnectModel = Callable[[], AbstractAsyncContextManager[Transport]]


async def _start(twilio: Transport) -> str:
    while True:
        event = parse_twilio_message(await twilio.receive())
        if isinstance(event, StreamStarted):
            return event.stream_sid


class NaiveBot:
    """The seed's shape: one bot object for all calls; its hang-up timer is not call-scoped."""

    def __init__(self) -> None:
        self.current: Transport | None = None

    async def __call__(self, twilio: Transport, connect_model: ConnectModel) -> None:
        self.current = twilio
        hang_up_at = await naive_bridge(twilio, connect_model)
        if hang_up_at is not None:
            # The fallback outlives the call and hangs up whatever call is current by then.
            await anyio.sleep_until(hang_up_at)
            if self.current is not None:
                await self.current.aclose()


async def naive_bridge(twilio: Transport, connect_model: ConnectModel) -> float | None:
    """The Twilio sample's bridge: server VAD defaults, wall-clock truncate, cancel on speech.

    Returns:
        When its hang-up fallback is due, if the model called ``end_call``.
    """
    hang_up_at: float | None = None
    try:
        stream_sid = await _start(twilio)
    except TransportClosed:
        return None
    async with connect_model() as model:
        await model.send(dumps(session_update(interrupt_response=True, create_response=True)))
        await model.send(dumps(response_create()))  # the greeting
        latest_ms = 0
        last_item: str | None = None
        start_ms: int | None = None
        marks: list[str] = []

        async with anyio.create_task_group() as tg:

            async def from_twilio() -> None:
                nonlocal latest_ms
                try:
                    async for text in twilio:  # type: ignore[attr-defined]
                        event = parse_twilio_message(text)
                        if isinstance(event, MediaReceived):
                            latest_ms = event.timestamp_ms
                            await model.send(dumps(input_audio_append(event.payload)))
                        elif isinstance(event, MarkPlayed) and marks:
                            marks.pop(0)
                        elif isinstance(event, StreamStopped):
                            break
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            async def from_model() -> None:
                nonlocal last_item, start_ms, hang_up_at
                try:
                    async for text in model:  # type: ignore[attr-defined]
                        event = parse_realtime_event(text)
                        if isinstance(event, AudioDelta):
                            await twilio.send(dumps(media_message(stream_sid, event.payload)))
                            if event.item_id != last_item:
                                last_item, start_ms = event.item_id, latest_ms
                            await twilio.send(dumps(mark_message(stream_sid, "responsePart")))
                            marks.append("responsePart")
                        elif (
                            isinstance(event, SpeechStarted) and last_item and start_ms is not None
                        ):
                            if marks:
                                elapsed = latest_ms - start_ms
                                await model.send(dumps(item_truncate(last_item, elapsed)))
                                await twilio.send(dumps(clear_message(stream_sid)))
                                marks.clear()
                            await model.send(dumps(response_cancel()))
                            last_item, start_ms = None, None
                        elif isinstance(event, FunctionCallArgumentsDone):
                            hang_up_at = anyio.current_time() + 6.0  # the hang-up fallback
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(from_twilio)
            tg.start_soon(from_model)
    await twilio.aclose()
    return hang_up_at


@dataclass
class _Playback:
    item_id: str | None = None
    sent_ms: int = 0
    heard_ms: int = 0
    marks: dict[str, tuple[str, int]] = field(default_factory=dict)
    cleared: bool = False


async def careful_bridge(
    twilio: Transport,
    connect_model: ConnectModel,
    *,
    greeting_lock: bool = True,
    watchdog: float = 3.0,
    hangup_fallback: float = 6.0,
) -> None:
    """Full turn control: the bridge decides every cancel and create; one scope per call."""
    try:
        stream_sid = await _start(twilio)
    except TransportClosed:
        return
    async with connect_model() as model:
        await model.send(
            dumps(
                session_update(
                    interrupt_response=False, create_response=False, tools=[end_call_tool()]
                )
            )
        )
        state: dict[str, Any] = {
            "active": None,
            "create_in_flight": False,
            "cancel_in_flight": False,
            "greeting": True,
            "hangup": False,
            "waiting_turn": False,
            "retried": False,
            "closed": False,
            "echo_turn": False,
        }
        playback = _Playback()
        dropped: set[str] = set()
        counter = iter(range(1, 1_000_000))
        turn_answered = anyio.Event()

        async def create() -> None:
            if state["active"] or state["create_in_flight"] or state["hangup"]:
                return
            state["create_in_flight"] = True
            await model.send(dumps(response_create()))

        async with anyio.create_task_group() as tg:

            async def hang_up() -> None:
                state["closed"] = True
                await twilio.aclose()
                tg.cancel_scope.cancel()

            async def fallback() -> None:
                await anyio.sleep(hangup_fallback)
                await hang_up()

            async def watch_turn(answered: anyio.Event) -> None:
                with anyio.move_on_after(watchdog):
                    await answered.wait()
                    return
                if not (state["hangup"] or state["active"] or state["retried"]):
                    state["retried"] = True
                    state["create_in_flight"] = False  # the create was lost
                    await create()

            async def from_twilio() -> None:
                try:
                    async for text in twilio:  # type: ignore[attr-defined]
                        event = parse_twilio_message(text)
                        if isinstance(event, MediaReceived):
                            await model.send(dumps(input_audio_append(event.payload)))
                        elif isinstance(event, MarkPlayed):
                            info = playback.marks.pop(event.name, None)
                            if info is not None and not playback.cleared:
                                playback.heard_ms = info[1]
                                if info[0] == "goodbye":
                                    await hang_up()
                            if not playback.marks:
                                playback.cleared = False
                                if state["greeting"] and not state["active"]:
                                    state["greeting"] = False
                        elif isinstance(event, StreamStopped):
                            break
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            async def from_model() -> None:
                nonlocal turn_answered
                try:
                    async for text in model:  # type: ignore[attr-defined]
                        event = parse_realtime_event(text)
                        if isinstance(event, ResponseCreated):
                            state["active"] = event.response_id
                            state["create_in_flight"] = False
                            turn_answered.set()
                        elif isinstance(event, ResponseDone):
                            if state["active"] == event.response_id:
                                state["active"] = None
                            state["cancel_in_flight"] = False
                            if state["waiting_turn"]:
                                state["waiting_turn"] = False
                                await create()
                        elif isinstance(event, AudioDelta):
                            if event.response_id in dropped:
                                continue
                            if event.item_id != playback.item_id:
                                playback.item_id, playback.sent_ms = event.item_id, 0
                                playback.heard_ms = 0
                            await twilio.send(dumps(media_message(stream_sid, event.payload)))
                            playback.sent_ms += event.num_bytes // 8
                            name = f"m{next(counter)}"
                            playback.marks[name] = (event.item_id, playback.sent_ms)
                            await twilio.send(dumps(mark_message(stream_sid, name)))
                        elif isinstance(event, SpeechStarted):
                            playing = bool(playback.marks)
                            if (greeting_lock and state["greeting"] and playing) or state["hangup"]:
                                state["echo_turn"] = True
                                continue  # echo of the greeting, or the goodbye: not a barge-in
                            state["echo_turn"] = False
                            if greeting_lock and state["greeting"]:
                                continue  # the caller spoke first: answer after the greeting
                            if playback.marks and playback.item_id is not None:
                                await twilio.send(dumps(clear_message(stream_sid)))
                                playback.cleared = True
                                heard = min(playback.heard_ms, playback.sent_ms)
                                await model.send(dumps(item_truncate(playback.item_id, heard)))
                            if state["active"] and not state["cancel_in_flight"]:
                                state["cancel_in_flight"] = True
                                dropped.add(str(state["active"]))
                                await model.send(dumps(response_cancel()))
                        elif isinstance(event, InputAudioCommitted):
                            if state["hangup"] or state["echo_turn"]:
                                state["echo_turn"] = False
                                continue
                            turn_answered = anyio.Event()
                            state["retried"] = False
                            tg.start_soon(watch_turn, turn_answered)
                            if state["active"] or state["create_in_flight"]:
                                state["waiting_turn"] = True
                            else:
                                await create()
                        elif (
                            isinstance(event, FunctionCallArgumentsDone)
                            and event.name == "end_call"
                        ):
                            state["hangup"] = True
                            name = f"m{next(counter)}"
                            playback.marks[name] = ("goodbye", playback.sent_ms)
                            await twilio.send(dumps(mark_message(stream_sid, name)))
                            tg.start_soon(fallback)
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            await create()  # the greeting
            tg.start_soon(from_twilio)
            tg.start_soon(from_model)
    if not state["closed"]:
        await twilio.aclose()
