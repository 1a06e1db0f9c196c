"""A hand-written call handler using voiceguard's decorators and create helper.

* ``@call.barge_in``: the caller-talks-over-the-bot handler runs for real speech only, never for
  the bot's own echo or line noise (and the reason is logged when it does not run);
* ``@call_timer(seconds)``: a timer of the current call; when the call ends it dies with it, so
  the hang-up fallback of one call can never hang up the next;
* ``await call.create_response(...)``: a ``response.create`` that waits for the conversation to
  be free instead of failing with ``conversation_already_has_active_response``.

Check it against voiceguard's simulators (in virtual time, a few seconds; no key, no phone)::

    .venv/bin/python examples/custom_handler_decorators.py

Needs ``pip install 'voiceguard[sim]' trio``.
"""

from __future__ import annotations

import contextlib
import sys

import anyio

from voiceguard import CallScope
from voiceguard.middleware import GuardedCall, call_timer
from voiceguard.protocol import (
    END_CALL_TOOL_NAME,
    AudioDelta,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    MarkPlayed,
    MediaReceived,
    ResponseDone,
    SpeechStarted,
    StreamStarted,
    StreamStopped,
    clear_message,
    dumps,
    end_call_tool,
    input_audio_append,
    mark_message,
    media_message,
    parse_realtime_event,
    parse_twilio_message,
    response_cancel,
    session_update,
)
from voiceguard.sim import SCENARIOS, ConnectModel, Transport, TransportClosed
from voiceguard.sim.measures import check_bridge, render_checks

#: The scenarios this example plays.
PLAYED = (
    "echo-in-first-seconds",
    "hangup-fallback-outlives-call",
    "watchdog-after-goodbye",
    "cancel-races-done",
)


async def handle_call(twilio: Transport, connect_model: ConnectModel) -> None:
    """One call, from Twilio's ``start`` to the hang-up."""
    start = parse_twilio_message(await twilio.receive())
    while not isinstance(start, StreamStarted):
        start = parse_twilio_message(await twilio.receive())
    sid = start.stream_sid
    call = GuardedCall(call_sid=start.call_sid)
    async with CallScope(call_sid=start.call_sid, stream_sid=sid) as scope, connect_model() as raw:
        model = call.channel(raw.send, raw.receive)
        marks_out = 0
        goodbye = False

        @call_timer(6.0)
        async def hang_up_fallback() -> None:
            """The goodbye's last mark never came back: hang up anyway."""
            scope.close()

        @call_timer(10.0)
        async def still_there() -> None:
            """The line went quiet: ask once (it waits while the bot is still talking)."""
            await call.create_response(
                {"instructions": "Ask whether the caller is still there."}, label="idle"
            )

        @call.barge_in
        async def on_barge_in(event: object) -> None:
            """The caller talks over the bot: stop its audio on the phone, cancel its answer."""
            nonlocal marks_out
            if marks_out:
                await twilio.send(dumps(clear_message(sid)))
                marks_out = 0
            await model.send(dumps(response_cancel()))  # dropped by the guard if not valid now

        # Full turn control: the server reports speech, this handler cancels and answers.
        await model.send(dumps(session_update(tools=[end_call_tool()])))
        await call.create_response({"instructions": "Greet the caller."}, label="greeting")

        async def from_twilio() -> None:
            nonlocal marks_out
            with contextlib.suppress(TransportClosed):  # the caller hung up
                while True:
                    event = parse_twilio_message(await twilio.receive())
                    if isinstance(event, MediaReceived):
                        await model.send(dumps(input_audio_append(event.payload)))
                    elif isinstance(event, MarkPlayed):
                        marks_out = max(0, marks_out - 1)
                        if goodbye and marks_out == 0:
                            break  # the goodbye has played: hang up
                    elif isinstance(event, StreamStopped):
                        break
            scope.close()

        async def from_model() -> None:
            nonlocal marks_out, goodbye
            with contextlib.suppress(TransportClosed):  # the caller hung up
                async for text in model:
                    event = parse_realtime_event(text)
                    if isinstance(event, AudioDelta):
                        await twilio.send(dumps(media_message(sid, event.payload)))
                        await twilio.send(dumps(mark_message(sid, "chunk")))
                        marks_out += 1
                        still_there.cancel()
                    elif isinstance(event, SpeechStarted):
                        await on_barge_in(text)
                        still_there.cancel()
                    elif isinstance(event, InputAudioCommitted):  # a real turn (echo is hidden)
                        await call.create_response(label="turn")  # waits if the bot still talks
                    elif isinstance(event, FunctionCallArgumentsDone):
                        goodbye = goodbye or event.name == END_CALL_TOOL_NAME
                    elif isinstance(event, ResponseDone):
                        if goodbye:
                            hang_up_fallback.start()
                        else:
                            still_there.restart()
            scope.close()  # the model went away, or the caller

        scope.start_soon(from_twilio)
        scope.start_soon(from_model)
        await anyio.sleep_forever()  # until scope.close()
    await twilio.aclose()


def main() -> int:
    from trio.testing import MockClock  # noqa: PLC0415 - the example runs in virtual time

    async def check() -> str:
        return render_checks(await check_bridge(handle_call, [SCENARIOS[n] for n in PLAYED]))

    print(
        anyio.run(check, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
