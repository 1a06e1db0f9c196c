"""RealtimeSimulator over the in-memory transport: each protocol behaviour it claims.

Runs in virtual time on trio (``MockClock``) so timings are exact, and as a real-time smoke test on
asyncio with fast settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trio.testing
from sim_helpers import Client, types

from voiceguard.protocol import (
    PCM24K,
    AudioDelta,
    FunctionCallArgumentsDone,
    InputAudioCleared,
    InputAudioCommitted,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemTruncated,
    OutputItemAdded,
    RealtimeError,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptDone,
    UnknownEvent,
    end_call_tool,
    item_delete,
    item_truncate,
    response_cancel,
    response_create,
    session_update,
)
from voiceguard.sim import (
    EnergyVad,
    EventFault,
    FunctionCall,
    RealtimeSimulator,
    Reply,
    TransportClosed,
    VadSpeechStarted,
    VadSpeechStopped,
    silence,
    speech_like,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param("trio-virtual", id="trio-virtual"),
        pytest.param("asyncio", id="asyncio", marks=pytest.mark.realtime),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Virtual time on trio; a real-time smoke on asyncio."""
    if request.param == "trio-virtual":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return "asyncio"


def fast(**options: Any) -> RealtimeSimulator:
    options.setdefault("audio_speed", 40.0)
    options.setdefault("first_audio_delay", 0.01)
    return RealtimeSimulator(**options)


@asynccontextmanager
async def session(
    sim: RealtimeSimulator, *, beta: bool = False, **update: Any
) -> AsyncIterator[Client]:
    """Connect, check ``session.created``, send a ``session.update`` (pcmu both ways)."""
    with anyio.fail_after(30):
        async with sim.connect(beta=beta) as transport:
            client = Client(transport)
            assert isinstance(await client.recv(), SessionCreated)
            await client.send(session_update(beta=beta, **update))
            assert isinstance(await client.recv(), SessionUpdated)
            yield client


SPEECH = silence(1.0) + speech_like(1.5, seed=4) + silence(1.0)


async def test_session_created_then_partial_update_merges() -> None:
    sim = fast()
    with anyio.fail_after(10):
        async with sim.connect() as transport:
            client = Client(transport)
            created = await client.recv()
            assert isinstance(created, SessionCreated)
            assert created.session["type"] == "realtime"
            assert created.turn_detection is not None
            assert created.turn_detection.interrupt_response is True
            assert created.input_format == PCM24K
            await client.send(session_update(instructions="Be brief."))
            updated = await client.recv()
            assert isinstance(updated, SessionUpdated)
            # A second partial update keeps the first one's fields; turn_detection is filled in.
            await client.send(
                {"type": "session.update", "session": {"type": "realtime", "tools": []}}
            )
            merged = await client.recv()
            assert isinstance(merged, SessionUpdated)
            assert merged.session["instructions"] == "Be brief."
            assert merged.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
            assert merged.turn_detection is not None
            assert merged.turn_detection.interrupt_response is False
            assert merged.turn_detection.silence_duration_ms == 500


async def test_session_update_without_type_is_an_error_and_the_session_stays_open() -> None:
    async with session(fast()) as client:
        await client.send({"type": "session.update", "event_id": "evt_1", "session": {}})
        error = await client.recv()
        assert isinstance(error, RealtimeError)
        assert (error.error_type, error.code, error.param, error.client_event_id) == (
            "invalid_request_error",
            "missing_required_parameter",
            "session.type",
            "evt_1",
        )
        await client.send(response_create())
        assert isinstance(await client.until(ResponseDone), ResponseDone)


async def test_vad_timing_matches_the_energy_vad_on_the_same_audio() -> None:
    expected = EnergyVad().push(SPEECH)
    start = next(e for e in expected if isinstance(e, VadSpeechStarted))
    stop = next(e for e in expected if isinstance(e, VadSpeechStopped))
    async with session(fast(), interrupt_response=True, create_response=False) as client:
        await client.append(SPEECH)
        started = await client.until(SpeechStarted)
        stopped = await client.until(SpeechStopped)
        committed = await client.until(InputAudioCommitted)
        added = await client.until(ItemAdded)
    assert started.audio_start_ms == start.audio_start_ms == 700  # onset 1000 ms - 300 ms padding
    assert stopped.audio_end_ms == stop.audio_end_ms
    assert started.item_id == stopped.item_id == committed.item_id == added.item_id
    assert added.role == "user"


async def test_vad_honours_threshold_and_silence_duration() -> None:
    async with session(fast(), silence_duration_ms=200, create_response=False) as client:
        await client.append(SPEECH)
        stopped = await client.until(SpeechStopped)
    expected = EnergyVad(silence_duration_ms=200).push(SPEECH)
    assert stopped.audio_end_ms == expected[-1].detected_ms
    quiet = silence(1.0) + speech_like(1.5, level_dbfs=-38.0, seed=4) + silence(1.0)
    for threshold in (0.5, 0.9):
        expected_starts = [
            e for e in EnergyVad(threshold=threshold).push(quiet) if isinstance(e, VadSpeechStarted)
        ]
        async with session(fast(), vad_threshold=threshold, create_response=False) as client:
            await client.append(quiet)
            got = [e for e in await client.drain(0.3) if isinstance(e, SpeechStarted)]
        assert [e.audio_start_ms for e in got] == [e.audio_start_ms for e in expected_starts]
        assert bool(got) is (threshold == 0.5)


async def test_interrupt_response_true_cancels_the_active_response_on_speech() -> None:
    sim = fast(replies=[Reply(duration=30.0)], audio_speed=1.0)
    async with session(sim, interrupt_response=True, create_response=False) as client:
        await client.send(response_create())
        created = await client.until(ResponseCreated)
        await client.until(AudioDelta)
        await client.append(SPEECH)
        started = await client.until(SpeechStarted)
        done = await client.until(ResponseDone)
        order = types(client.seen)
    assert order.index("SpeechStarted") < order.index("ResponseDone")
    assert started.audio_start_ms == 700
    assert (done.response_id, done.status, done.status_reason) == (
        created.response_id,
        "cancelled",
        "turn_detected",
    )
    assert done.output[0].status == "incomplete"


async def test_interrupt_and_create_response_false_leave_turns_to_the_client() -> None:
    sim = fast(replies=[Reply(duration=1.0)], audio_speed=1.0)
    async with session(sim, interrupt_response=False, create_response=False) as client:
        await client.send(response_create())
        created = await client.until(ResponseCreated)
        await client.append(SPEECH)
        await client.until(SpeechStopped)
        await client.until(InputAudioCommitted)
        done = await client.until(ResponseDone)
        later = await client.drain(0.3)
    assert (done.response_id, done.status) == (created.response_id, "completed")
    assert not [e for e in later if isinstance(e, ResponseCreated)]
    assert sim.statistics().responses_created == 1


async def test_create_response_true_creates_after_the_speech_stops() -> None:
    async with session(fast(), interrupt_response=True, create_response=True) as client:
        await client.append(SPEECH)
        committed = await client.until(InputAudioCommitted)
        created = await client.until(ResponseCreated)
        done = await client.until(ResponseDone)
    order = [e for e in client.seen if isinstance(e, (InputAudioCommitted, ResponseCreated))]
    assert order == [committed, created]
    assert done.status == "completed"


def two_seconds_at_four_times() -> RealtimeSimulator:
    """A 2 s answer, generated four times faster than real time, its audio 100 ms after the
    ``response.create``."""
    return RealtimeSimulator(
        replies=[Reply(text="Hello there, how can I help?", duration=2.0)],
        audio_speed=4.0,
        first_audio_delay=0.1,
    )


async def test_a_response_streams_audio_and_transcript_faster_than_real_time() -> None:
    sim = two_seconds_at_four_times()
    async with session(sim) as client:
        start = anyio.current_time()
        await client.send(response_create())
        done = await client.until(ResponseDone)
        elapsed = anyio.current_time() - start
    kinds = types(client.seen)
    first = kinds.index("ResponseCreated")
    assert kinds[first : first + 5] == [
        "ResponseCreated",
        "RateLimitsUpdated",
        "OutputItemAdded",
        "ItemAdded",
        "ContentPartAdded",
    ]
    assert kinds[-6:] == [
        "AudioDone",
        "TranscriptDone",
        "ContentPartDone",
        "OutputItemDone",
        "ItemDone",
        "ResponseDone",
    ]
    audio = b"".join(e.audio for e in client.seen if isinstance(e, AudioDelta))
    assert len(audio) == 2.0 * 8000  # pcmu: 8 bytes per ms
    transcript = next(e for e in client.seen if isinstance(e, TranscriptDone))
    assert transcript.transcript == "Hello there, how can I help?"
    assert done.status == "completed" and done.status_reason is None
    assert done.usage is not None
    assert elapsed < 2.0 / 2  # generated four times faster than real time


async def test_a_response_late_to_run_catches_up_instead_of_drifting(anyio_backend: Any) -> None:
    """A simulator whose event loop was busy for 300 ms (a loaded test machine) runs the steps
    it missed at once and ends its response when it would have: a model's own servers do not
    slow down with the client's machine."""
    if anyio_backend == "asyncio":
        pytest.skip("needs virtual time: the loop made late by moving the clock")

    async def generation(busy: float) -> float:
        async with session(two_seconds_at_four_times()) as client:
            start = anyio.current_time()
            await client.send(response_create())
            await client.until(AudioDelta)
            clock = trio.lowlevel.current_clock()
            assert isinstance(clock, trio.testing.MockClock)
            clock.jump(busy)
            await client.until(ResponseDone)
            return anyio.current_time() - start

    on_time = await generation(0.0)
    assert 0.55 <= on_time <= 0.65  # 100 ms to the first audio, 2 s of it four times as fast
    assert await generation(0.3) == pytest.approx(on_time, abs=0.02)


async def test_cancel_without_an_active_response_is_response_cancel_not_active() -> None:
    async with session(fast()) as client:
        await client.send(response_cancel(event_id="evt_c"))
        error = await client.recv()
    assert isinstance(error, RealtimeError)
    assert (error.error_type, error.code, error.message, error.client_event_id) == (
        "invalid_request_error",
        "response_cancel_not_active",
        "Cancellation failed: no active response found",
        "evt_c",
    )


async def test_cancel_of_the_active_response_gives_client_cancelled() -> None:
    sim = fast(replies=[Reply(duration=30.0)], audio_speed=1.0)
    async with session(sim) as client:
        await client.send(response_create())
        created = await client.until(ResponseCreated)
        await client.until(AudioDelta)
        await client.send(response_cancel(created.response_id))
        done = await client.until(ResponseDone)
        await client.send(response_cancel(created.response_id))
        again = await client.until(RealtimeError)
    assert (done.status, done.status_reason) == ("cancelled", "client_cancelled")
    assert again.code == "response_cancel_not_active"
    assert sim.statistics().responses_cancelled == 1


async def test_create_while_active_is_refused_and_the_running_response_continues() -> None:
    sim = fast(replies=[Reply(duration=1.0)])
    async with session(sim) as client:
        await client.send(response_create())
        created = await client.until(ResponseCreated)
        await client.send(response_create(event_id="evt_2"))
        error = await client.until(RealtimeError)
        done = await client.until(ResponseDone)
        later = await client.drain(0.3)
    assert error.code == "conversation_already_has_active_response"
    assert error.client_event_id == "evt_2"
    assert created.response_id in error.message
    assert (done.response_id, done.status) == (created.response_id, "completed")
    assert not [e for e in later if isinstance(e, ResponseCreated)]


async def test_out_of_band_responses_may_run_in_parallel() -> None:
    async with session(fast(replies=[Reply(duration=1.0)] * 2)) as client:
        await client.send(response_create())
        await client.until(ResponseCreated)
        await client.send(response_create({"conversation": "none", "metadata": {"k": "v"}}))
        second = await client.until(ResponseCreated)
    assert second.conversation_id is None
    assert second.metadata == {"k": "v"}


async def test_truncate_rules() -> None:
    async with session(fast(replies=[Reply(duration=1.0)])) as client:
        await client.send(response_create())
        item = (await client.until(OutputItemAdded)).item_id
        await client.until(ResponseDone)
        await client.send(item_truncate(item, 1200, event_id="t1"))
        too_long = await client.until(RealtimeError)
        await client.send(item_truncate(item, 400))
        truncated = await client.until(ItemTruncated)
        await client.send(item_truncate("item_nope", 0))
        unknown = await client.until(RealtimeError)
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item,
                "content_index": 0,
                "audio_end_ms": -5,
            }
        )
        negative = await client.until(RealtimeError)
    assert too_long.code is None
    assert too_long.message == "Audio content of 1000ms is already shorter than 1200ms"
    assert (too_long.param, too_long.client_event_id) == ("audio_end_ms", "t1")
    assert (truncated.item_id, truncated.audio_end_ms, truncated.content_index) == (item, 400, 0)
    assert unknown.code == "item_truncate_invalid_item_id"
    assert (negative.code, negative.param) == ("integer_below_min_value", "audio_end_ms")


async def test_truncate_of_a_user_item_is_unsupported() -> None:
    async with session(fast(), create_response=False) as client:
        await client.append(SPEECH)
        committed = await client.until(InputAudioCommitted)
        await client.send(item_truncate(committed.item_id, 0))
        error = await client.until(RealtimeError)
    assert (error.code, error.message) == (
        "unsupported_content_type",
        "Only model output audio messages can be truncated",
    )


async def test_delete_and_retrieve() -> None:
    async with session(fast(), create_response=False) as client:
        await client.append(SPEECH)
        committed = await client.until(InputAudioCommitted)
        await client.send({"type": "conversation.item.retrieve", "item_id": committed.item_id})
        retrieved = await client.recv()
        while not isinstance(retrieved, UnknownEvent):
            retrieved = await client.recv()
        await client.send(item_delete(committed.item_id))
        deleted = await client.until(ItemDeleted)
        await client.send(item_delete(committed.item_id))
        error = await client.until(RealtimeError)
    assert retrieved.type == "conversation.item.retrieved"
    assert retrieved.raw["item"]["id"] == committed.item_id
    assert deleted.item_id == committed.item_id
    assert error.code == "item_delete_invalid_item_id"


async def test_item_create_function_call_output() -> None:
    async with session(fast()) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
            }
        )
        added = await client.until(ItemAdded)
        done = await client.until(ItemDone)
        await client.send(
            {
                "type": "conversation.item.create",
                "previous_item_id": "item_missing",
                "item": {"type": "message", "role": "user", "content": []},
            }
        )
        error = await client.until(RealtimeError)
    assert added.item_type == done.item_type == "function_call_output"
    assert (error.code, error.param) == ("invalid_value", "previous_item_id")


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ('{"event_id": "e"}', "missing_required_parameter", "type"),
        ('{"type": "response.explode"}', "invalid_value", "type"),
        ('{"type": "conversation.item.delete"}', "missing_required_parameter", "item_id"),
        ('{"type": "conversation.item.delete", "item_id": 5}', "invalid_type", "item_id"),
        ('{"type": "input_audio_buffer.append", "audio": "!!!"}', "invalid_value", "audio"),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty", None),
    ],
)
async def test_malformed_client_events_get_invalid_request_errors(
    raw: str, code: str, param: str | None
) -> None:
    sim = fast()
    async with session(sim) as client:
        await client.send_raw(raw)
        error = await client.recv()
        assert isinstance(error, RealtimeError)
        assert (error.error_type, error.code, error.param) == ("invalid_request_error", code, param)
        await client.send({"type": "input_audio_buffer.clear"})
        assert isinstance(await client.recv(), InputAudioCleared)
    assert sim.statistics().errors_by_code == {code: 1}


async def test_commit_and_clear() -> None:
    async with session(fast(), turn_detection=None) as client:
        await client.append(silence(0.2))
        await client.send({"type": "input_audio_buffer.commit", "event_id": "c"})
        committed = await client.until(InputAudioCommitted)
        await client.until(ItemDone)
        await client.send({"type": "input_audio_buffer.commit"})
        empty = await client.until(RealtimeError)
    assert committed.item_id.startswith("item_")
    assert empty.code == "input_audio_buffer_commit_empty"
    assert "buffer too small" in empty.message


async def test_function_call_end_call() -> None:
    sim = fast(replies=[Reply(text="Goodbye!", function_call=FunctionCall(name="end_call"))])
    async with session(sim, tools=[end_call_tool()]) as client:
        await client.send(response_create())
        call = await client.until(FunctionCallArgumentsDone)
        done = await client.until(ResponseDone)
    assert (call.name, call.arguments) == ("end_call", "{}")
    assert [o.item_type for o in done.output] == ["message", "function_call"]
    assert done.output[1].call_id == call.call_id


async def test_beta_names_and_session_shape() -> None:
    async with session(fast(), beta=True) as client:
        await client.send(response_create())
        await client.until(ResponseDone)
    created = client.seen[0]
    assert isinstance(created, SessionCreated)
    assert created.session["input_audio_format"] == "pcm16"
    assert "type" not in created.session
    assert any(isinstance(e, AudioDelta) for e in client.seen)
    assert not any(isinstance(e, ItemDone) for e in client.seen)


async def test_pcm24k_audio_both_ways() -> None:
    pcm = bytes(6 * len(SPEECH))  # 24 kHz 16-bit silence, as long as SPEECH
    async with session(
        fast(replies=[Reply(duration=0.5)]),
        input_format=PCM24K,
        output_format=PCM24K,
        create_response=False,
    ) as client:
        await client.append(pcm, chunk=960)
        assert not [e for e in await client.drain(0.2) if isinstance(e, SpeechStarted)]
        await client.send(response_create())
        await client.until(ResponseDone)
    audio = b"".join(e.audio for e in client.seen if isinstance(e, AudioDelta))
    assert len(audio) == 500 * 48


async def test_lost_and_stalled_responses() -> None:
    sim = fast(replies=[Reply(lost=True), Reply(stall=True)])
    async with session(sim) as client:
        await client.send(response_create())
        assert not [e for e in await client.drain(0.3) if isinstance(e, ResponseCreated)]
        await client.send(response_create())
        created = await client.until(ResponseCreated)
        assert types(await client.drain(0.3)) == ["RateLimitsUpdated"]
        await client.send(response_cancel())
        done = await client.until(ResponseDone)
    assert done.response_id == created.response_id and done.status == "cancelled"
    assert sim.statistics().responses_lost == 1


async def test_dropping_the_socket_mid_response() -> None:
    sim = fast(replies=[Reply(duration=3.0, drop_connection_after=0.5)])
    async with session(sim) as client:
        await client.send(response_create())

        async def receive_until_closed() -> None:
            while True:
                await client.recv()

        with pytest.raises(TransportClosed) as info:
            await receive_until_closed()
    assert info.value.code == 1006
    audio = b"".join(e.audio for e in client.seen if isinstance(e, AudioDelta))
    assert len(audio) == 500 * 8
    record = sim.connections[0]
    assert record.dropped and not record.open
    assert sim.statistics().connections_open == 0


async def test_event_faults_delay_duplicate_and_drop() -> None:
    sim = fast(
        replies=[Reply(duration=0.2)] * 3,
        faults=[
            EventFault(
                event_type="response.created", action="delay", seconds=0.2, occurrences=(1,)
            ),
            EventFault(event_type="response.done", action="duplicate", occurrences=(2,)),
            EventFault(event_type="rate_limits.updated", action="drop"),
        ],
    )
    async with session(sim) as client:
        await client.send(response_create())
        first = await client.drain(0.4)
        await client.send(response_create())
        second = await client.drain(0.4)
    kinds = types(first)
    # response.created was delayed past its own deltas and response.done: reordered.
    assert kinds.index("AudioDelta") < kinds.index("ResponseCreated")
    assert kinds.index("ResponseDone") < kinds.index("ResponseCreated")
    assert "RateLimitsUpdated" not in types(first + second)
    dones = [e for e in second if isinstance(e, ResponseDone)]
    assert len(dones) == 2 and dones[0].event_id == dones[1].event_id


async def test_every_sent_event_parses_and_the_log_redacts_audio() -> None:
    sim = fast(replies=[Reply(duration=0.4)])
    async with session(sim, create_response=True, interrupt_response=True) as client:
        await client.send(response_create())
        await client.until(ResponseDone)
        await client.append(SPEECH)
        await client.until(ResponseDone)
    record = sim.connections[0]
    deltas = record.sent("response.output_audio.delta")
    assert deltas and all(str(e.event["delta"]).endswith(" bytes>") for e in deltas)
    appends = record.received("input_audio_buffer.append")
    assert appends and appends[0].event["audio"] == "<160 bytes>"
