"""CallerSimulator: Twilio's messages, paced frames, playout, marks, clear, echo, script.

Virtual time on trio (``MockClock``): frame times and mark echoes are exact.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import anyio
import pytest
import trio.testing

from voiceguard.audio import ulaw_energy_dbfs
from voiceguard.protocol import (
    Connected,
    DtmfReceived,
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    clear_message,
    dumps,
    mark_message,
    media_message,
    parse_twilio_message,
)
from voiceguard.sim import (
    CallerSimulator,
    CallRecord,
    EchoPath,
    EnergyVad,
    HangUp,
    PressDigit,
    Speak,
    Transport,
    VadSpeechStarted,
    memory_pair,
    tone,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    """Virtual time: a call of several seconds takes no real time."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def call_with(
    caller: CallerSimulator, bot: Any, *, latency: float = 0.0
) -> tuple[CallRecord, list[Any]]:
    """Run *caller* against ``bot(transport, inbox)``; *inbox* gets every parsed message."""
    caller_end, bot_end = memory_pair(latency=latency)
    inbox: list[Any] = []

    async def receive_all(transport: Transport) -> None:
        async for text in transport:  # type: ignore[attr-defined]
            inbox.append((anyio.current_time(), parse_twilio_message(text)))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_all, bot_end)
            tg.start_soon(bot, bot_end, inbox)
            record = await caller.run(caller_end)
            tg.cancel_scope.cancel()
    await bot_end.aclose()
    return record, inbox


async def idle(_transport: Transport, _inbox: list[Any]) -> None:
    await anyio.sleep_forever()


async def test_connected_start_and_paced_media_frames() -> None:
    caller = CallerSimulator(
        script=[HangUp(at=1.0)],
        custom_parameters={"token": "abc"},
        call_sid="CA1",
        stream_sid="MZ1",
    )
    record, inbox = await call_with(caller, idle)
    events = [e for _, e in inbox]
    assert isinstance(events[0], Connected) and events[0].protocol == "Call"
    start = events[1]
    assert isinstance(start, StreamStarted)
    assert (start.call_sid, start.stream_sid, start.custom_parameters) == (
        "CA1",
        "MZ1",
        {"token": "abc"},
    )
    assert start.media_format.sample_rate == 8000
    media = [(t, e) for t, e in inbox if isinstance(e, MediaReceived)]
    assert len(media) == 50  # 1 s of 20 ms frames
    assert [e.chunk for _, e in media] == list(range(1, 51))
    assert [e.timestamp_ms for _, e in media] == [20 * i for i in range(50)]
    times = [t for t, _ in media]
    assert all(abs((b - a) - 0.02) < 1e-9 for a, b in itertools.pairwise(times))
    assert all(e.num_bytes == 160 for _, e in media)
    stop = events[-1]
    assert isinstance(stop, StreamStopped) and stop.call_sid == "CA1"
    sequence = [e.sequence_number for e in events[1:]]
    assert sequence == list(range(1, len(events)))
    assert record.ended_by == "caller" and record.ended_at == pytest.approx(1.0)


async def test_marks_are_echoed_when_their_audio_has_played() -> None:
    async def bot(transport: Transport, inbox: list[Any]) -> None:
        while not any(isinstance(e, StreamStarted) for _, e in inbox):
            await anyio.sleep(0.001)
        sid = next(e.stream_sid for _, e in inbox if isinstance(e, StreamStarted))
        await transport.send(dumps(media_message(sid, b64(tone(1.0)))))
        await transport.send(dumps(mark_message(sid, "first")))
        await transport.send(dumps(media_message(sid, b64(tone(0.5)))))
        await transport.send(dumps(mark_message(sid, "second")))
        await anyio.sleep_forever()

    record, inbox = await call_with(CallerSimulator(script=[HangUp(at=3.0)]), bot)
    marks = [(t, e.name) for t, e in inbox if isinstance(e, MarkPlayed)]
    sent_at = inbox[1][0]
    assert [name for _, name in marks] == ["first", "second"]
    assert marks[0][0] - sent_at == pytest.approx(1.0, abs=0.021)
    assert marks[1][0] - sent_at == pytest.approx(1.5, abs=0.021)
    assert record.heard_seconds == pytest.approx(1.5)
    assert record.played_marks() == ["first", "second"]


async def test_clear_flushes_audio_and_echoes_every_pending_mark() -> None:
    async def bot(transport: Transport, inbox: list[Any]) -> None:
        while not any(isinstance(e, StreamStarted) for _, e in inbox):
            await anyio.sleep(0.001)
        sid = next(e.stream_sid for _, e in inbox if isinstance(e, StreamStarted))
        for name in ("a", "b", "c"):
            await transport.send(dumps(media_message(sid, b64(tone(1.0)))))
            await transport.send(dumps(mark_message(sid, name)))
        await anyio.sleep(1.5)
        await transport.send(dumps(clear_message(sid)))
        await anyio.sleep_forever()

    record, _ = await call_with(CallerSimulator(script=[HangUp(at=4.0)]), bot)
    assert [(m.name, m.cleared) for m in record.marks] == [("a", False), ("b", True), ("c", True)]
    clear_time = record.clears[0]
    assert [m.time for m in record.marks[1:]] == [clear_time, clear_time]
    assert record.heard_seconds == pytest.approx(1.5, abs=0.021)
    assert record.heard_between(clear_time + 0.001) == 0
    assert record.played_marks() == ["a"]


async def test_echo_path_returns_the_bot_audio_delayed_and_attenuated() -> None:
    async def bot(transport: Transport, inbox: list[Any]) -> None:
        while not any(isinstance(e, StreamStarted) for _, e in inbox):
            await anyio.sleep(0.001)
        sid = next(e.stream_sid for _, e in inbox if isinstance(e, StreamStarted))
        await anyio.sleep(0.5)
        await transport.send(dumps(media_message(sid, b64(tone(1.0, level_dbfs=-10.0)))))
        await anyio.sleep_forever()

    caller = CallerSimulator(
        script=[HangUp(at=2.0)], echo=EchoPath(delay=0.2, return_loss_db=15.0), noise_dbfs=None
    )
    record, inbox = await call_with(caller, bot)
    frames = [e for _, e in inbox if isinstance(e, MediaReceived)]
    heard_from = round(record.heard[0].time * 1000)
    loud = [e.timestamp_ms for e in frames if ulaw_energy_dbfs(e.audio) > -40]
    assert loud[0] - heard_from == 200
    level = ulaw_energy_dbfs(frames[loud[0] // 20 + 5].audio)
    assert level == pytest.approx(-25.0, abs=1.0)  # -10 dBFS played, 15 dB echo return loss


async def test_scripted_speech_dtmf_and_hang_up() -> None:
    caller = CallerSimulator(
        script=[
            Speak(at=0.5, duration=1.0, text="hello"),
            PressDigit(at=2.0, digit="#"),
            HangUp(at=2.5),
        ],
        noise_dbfs=-70.0,
    )
    record, inbox = await call_with(caller, idle)
    audio = b"".join(e.audio for _, e in inbox if isinstance(e, MediaReceived))
    started = [e for e in EnergyVad().push(audio) if isinstance(e, VadSpeechStarted)]
    assert len(started) == 1 and started[0].speech_onset_ms == 500
    dtmf = [e for _, e in inbox if isinstance(e, DtmfReceived)]
    assert [(d.digit, d.track) for d in dtmf] == [("#", "inbound_track")]
    assert record.spoke == [(0.5, 1.5)]
    assert isinstance(inbox[-1][1], StreamStopped)


async def test_speech_after_heard_audio_and_the_bot_hanging_up() -> None:
    async def bot(transport: Transport, inbox: list[Any]) -> None:
        while not any(isinstance(e, StreamStarted) for _, e in inbox):
            await anyio.sleep(0.001)
        sid = next(e.stream_sid for _, e in inbox if isinstance(e, StreamStarted))
        await transport.send(dumps(media_message(sid, b64(tone(2.0)))))
        await anyio.sleep(3.0)
        await transport.aclose()

    caller = CallerSimulator(script=[Speak(after_heard=1.0, duration=0.5)])
    record, _ = await call_with(caller, bot)
    assert record.spoke[0][0] == pytest.approx(1.04, abs=0.03)
    assert record.ended_by == "bot"
    assert record.skipped == []


async def test_a_step_waiting_for_more_bot_audio_than_was_heard_is_recorded_as_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def greet(transport: Transport, inbox: list[Any]) -> None:
        while not any(isinstance(e, StreamStarted) for _, e in inbox):
            await anyio.sleep(0.001)
        sid = next(e.stream_sid for _, e in inbox if isinstance(e, StreamStarted))
        await transport.send(dumps(media_message(sid, b64(tone(2.0)))))  # a 2 s greeting
        await anyio.sleep_forever()

    caller = CallerSimulator(
        script=[
            Speak(after_heard=1.0, duration=0.3),
            Speak(after_heard=3.0, duration=0.8),
            PressDigit(after_heard=5, digit="1"),
            HangUp(at=4.0),
        ]
    )
    with caplog.at_level("WARNING", logger="voiceguard.sim.caller"):
        record, _ = await call_with(caller, greet)
    assert len(record.spoke) == 1
    assert record.skipped == [
        "Speak(after_heard=3.0) never spoke: only 2.0 s of the bot was heard before the call "
        "ended at 4.0 s",
        "PressDigit(after_heard=5.0) never pressed its key: only 2.0 s of the bot was heard "
        "before the call ended at 4.0 s",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"call {record.call_sid}: {text}" for text in record.skipped
    ]


async def test_messages_twilio_would_refuse_are_recorded_not_fatal() -> None:
    async def bot(transport: Transport, inbox: list[Any]) -> None:
        while not any(isinstance(e, StreamStarted) for _, e in inbox):
            await anyio.sleep(0.001)
        sid = next(e.stream_sid for _, e in inbox if isinstance(e, StreamStarted))
        await transport.send("not json")
        await transport.send(dumps(media_message("MZ_other", b64(tone(0.1)))))
        await transport.send(
            dumps({"event": "media", "streamSid": sid, "media": {"payload": "@@"}})
        )
        await transport.send(dumps({"event": "dance", "streamSid": sid}))
        await transport.send(dumps(media_message(sid, b64(tone(0.2)))))
        await anyio.sleep_forever()

    record, _ = await call_with(CallerSimulator(script=[HangUp(at=1.0)]), bot)
    assert len(record.protocol_errors) == 4
    assert record.heard_seconds == pytest.approx(0.2)


def test_script_steps_check_their_options() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Speak()
    with pytest.raises(ValueError, match="exactly one"):
        HangUp(at=1.0, after_heard=1.0)
    with pytest.raises(ValueError, match="digit"):
        PressDigit(at=1.0, digit="x")
    with pytest.raises(ValueError, match="delay"):
        EchoPath(delay=-1)
