"""The demo's two bridges, as scenario bridges: the guarded reference handler and a naive one.

:func:`guarded_bridge` runs the reference :class:`~voiceguard.MediaHandler` for each call;
:class:`NaiveBridge` is written like the popular Twilio sample, the counter-example the demo
contrasts with. Both have the form :func:`~voiceguard.sim.scenarios.run_scenario` takes
(``async def bridge(twilio, connect_model)``); the demo serves them over real sockets.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from typing_extensions import assert_never

from voiceguard.config import HandlerConfig
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import (
    AudioDelta,
    Connected,
    DtmfReceived,
    FunctionCallArgumentsDone,
    MarkPlayed,
    MediaReceived,
    SpeechStarted,
    StreamStarted,
    StreamStopped,
    UnknownEvent,
    clear_message,
    dumps,
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
from voiceguard.runtime.handler import MediaHandler
from voiceguard.sim.scenarios import Bridge, ConnectModel
from voiceguard.transports import Transport, TransportClosed

__all__ = ("NaiveBridge", "guarded_bridge")


def guarded_bridge(
    config: HandlerConfig | None = None, *, trace: Callable[[], TraceRecorder] | None = None
) -> Bridge:
    """The reference :class:`~voiceguard.MediaHandler` as a scenario bridge (one handler a call).

    Args:
        config: The handler's configuration; the defaults when omitted.
        trace: Makes the :class:`~voiceguard.observe.trace.TraceRecorder` of each call; no
            traces when omitted.

    Returns:
        ``async def bridge(twilio, connect_model)`` for
        :func:`voiceguard.sim.scenarios.run_scenario`.
    """

    async def bridge(twilio: Transport, connect_model: ConnectModel) -> None:
        @asynccontextmanager
        async def connect(_start: StreamStarted) -> AsyncIterator[Transport]:
            async with connect_model() as model:
                yield model

        recorder = trace() if trace is not None else None
        await MediaHandler(twilio, connect, config=config, trace=recorder).run()

    return bridge


async def _start(twilio: Transport) -> str:
    while True:
        event = parse_twilio_message(await twilio.receive())
        if isinstance(event, StreamStarted):
            return event.stream_sid


class NaiveBridge:
    """The popular Twilio sample's bridge, kept as the counter-example the demo contrasts with.

    One bot object serves every call (shared state), the session keeps the server defaults
    (``interrupt_response`` and ``create_response`` on), every ``speech_started`` clears the
    phone, truncates at a wall-clock estimate and sends ``response.cancel``, marks only count
    "still playing", and the hang-up fallback is a plain sleep that is not scoped to its call:
    when it fires it closes whatever call is current by then. Do not use it for anything but a
    comparison.

    Args:
        on_fallback: Called as ``on_fallback(owner, victim)`` when the fallback of the call on
            *owner* hangs up another call, *victim* (the demo's report says whose timer it was).
    """

    def __init__(
        self, *, on_fallback: Callable[[Transport, Transport], object] | None = None
    ) -> None:
        self.current: Transport | None = None
        self.on_fallback = on_fallback

    async def __call__(self, twilio: Transport, connect_model: ConnectModel) -> None:
        self.current = twilio
        hang_up_at = await _naive_call(twilio, connect_model)
        if hang_up_at is not None:
            # The fallback outlives the call and hangs up whatever call is current by then.
            await anyio.sleep_until(hang_up_at)
            if self.current is not None:
                if self.current is not twilio and self.on_fallback is not None:
                    self.on_fallback(twilio, self.current)
                await self.current.aclose()


async def _naive_call(twilio: Transport, connect_model: ConnectModel) -> float | None:
    """One call of the naive bridge: server VAD defaults, wall-clock truncate, cancel on speech.

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
                        match parse_twilio_message(text):
                            case MediaReceived() as media:
                                latest_ms = media.timestamp_ms
                                await model.send(dumps(input_audio_append(media.payload)))
                            case MarkPlayed():
                                if marks:
                                    marks.pop(0)
                            case StreamStopped():
                                break
                            case Connected() | StreamStarted() | DtmfReceived() | UnknownEvent():
                                pass
                            case unexpected:
                                assert_never(unexpected)
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            async def from_model() -> None:
                nonlocal last_item, start_ms, hang_up_at
                try:
                    async for text in model:  # type: ignore[attr-defined]
                        # The naive bridge reacts to three of the many event types and ignores
                        # the rest, new ones included: no exhaustive match here.
                        match parse_realtime_event(text):
                            case AudioDelta() as delta:
                                await twilio.send(dumps(media_message(stream_sid, delta.payload)))
                                if delta.item_id != last_item:
                                    last_item, start_ms = delta.item_id, latest_ms
                                await twilio.send(dumps(mark_message(stream_sid, "responsePart")))
                                marks.append("responsePart")
                            case SpeechStarted() if last_item and start_ms is not None:
                                if marks:
                                    elapsed = latest_ms - start_ms
                                    await model.send(dumps(item_truncate(last_item, elapsed)))
                                    await twilio.send(dumps(clear_message(stream_sid)))
                                    marks.clear()
                                await model.send(dumps(response_cancel()))
                                last_item, start_ms = None, None
                            case FunctionCallArgumentsDone():
                                hang_up_at = anyio.current_time() + 6.0  # the hang-up fallback
                            case _:
                                pass
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(from_twilio)
            tg.start_soon(from_model)
    await twilio.aclose()
    return hang_up_at
