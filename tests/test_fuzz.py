"""Fuzzing with the shipped strategies (:mod:`voiceguard.testing.strategies`).

* Both parsers take arbitrary, valid and near-valid frames and raise nothing but the documented
  :class:`~voiceguard.errors.RemoteProtocolError`; every valid message the strategies draw parses.
* The reference handler runs whole drawn calls (model replies with faults, tampered events,
  a caller's script, stray frames of both peers at random moments) in virtual time: every call
  ends with a reason, no exception escapes it, nothing is left open or pending, Twilio is never
  sent a message it would refuse, and the architecture page's invariants hold as seen from the
  caller.

CI runs a fixed, bounded set of examples. A longer, randomised run (see docs/faults.md)::

    VOICEGUARD_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest
import trio.testing
from fault_injection import Tampered
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voiceguard.demo.measures import cut_by_another_call as _cut_by_another_call
from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import (
    PCM24K,
    StreamStarted,
    UnknownEvent,
    parse_realtime_event,
    parse_twilio_message,
)
from voiceguard.runtime.handler import CallSummary, MediaHandler
from voiceguard.sim.caller import CallRecord
from voiceguard.sim.measures import false_barge_ins, truncations_beyond_heard
from voiceguard.testing.strategies import (
    CallPlan,
    call_plans,
    realtime_events,
    realtime_texts,
    twilio_messages,
    twilio_texts,
)
from voiceguard.transports import MemoryTransport, Transport, TransportClosed, memory_pair

#: Examples per property: bounded and reproducible in CI, larger and random on demand.
_LONG = int(os.environ.get("VOICEGUARD_FUZZ_EXAMPLES", "0"))
PARSER_RUNS = settings(
    max_examples=_LONG or 300,
    deadline=None,
    derandomize=not _LONG,
    suppress_health_check=[HealthCheck.too_slow],
)
CALL_RUNS = settings(
    max_examples=max(_LONG // 20, 1) if _LONG else 40,
    deadline=None,
    derandomize=not _LONG,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ============================================================================================
# The parsers


def parse_or_documented_error(parse: Any, text: str | bytes, peer: str) -> None:
    try:
        parse(text)
    except RemoteProtocolError as exc:
        error = exc
    else:
        return
    assert error.peer == peer
    assert str(error)


@PARSER_RUNS
@given(realtime_texts(), st.booleans())
def test_realtime_parser_raises_only_remote_protocol_errors(text: str, as_bytes: bool) -> None:
    data = text.encode() if as_bytes else text
    parse_or_documented_error(parse_realtime_event, data, "realtime")
    parse_or_documented_error(
        lambda m: parse_realtime_event(m, audio_format=PCM24K), data, "realtime"
    )


@PARSER_RUNS
@given(twilio_texts(), st.booleans())
def test_twilio_parser_raises_only_remote_protocol_errors(text: str, as_bytes: bool) -> None:
    parse_or_documented_error(parse_twilio_message, text.encode() if as_bytes else text, "twilio")


@PARSER_RUNS
@given(realtime_events(near_valid_share=False))
def test_valid_realtime_events_parse(message: dict[str, Any]) -> None:
    event = parse_realtime_event(json.dumps(message))
    assert isinstance(event, UnknownEvent) == (message["type"] == "something.new")


@PARSER_RUNS
@given(twilio_messages(near_valid_share=False))
def test_valid_twilio_messages_parse(message: dict[str, Any]) -> None:
    event = parse_twilio_message(json.dumps(message))
    known = ("connected", "start", "media", "mark", "dtmf", "stop")
    assert isinstance(event, UnknownEvent) == (message["event"] not in known)


# ============================================================================================
# The handler, whole calls


async def play(plan: CallPlan) -> None:
    """One drawn call through the reference handler, checked from the outside."""
    sim = plan.simulator()
    caller = plan.caller()
    caller_end, bot_end = memory_pair(latency=0.02, names=("caller", "bot"))
    began = anyio.current_time()
    pending = list(plan.model_noise)

    async def model_noise(link: Tampered, text: str) -> Sequence[str]:
        now = anyio.current_time() - began
        due = [t for at, t in pending if at <= now]
        del pending[: len(due)]
        return [text, *due]

    @contextlib.asynccontextmanager
    async def connect(start: StreamStarted) -> AsyncIterator[Transport]:
        async with sim.connect(latency=0.0251) as model:
            assert isinstance(model, MemoryTransport)
            yield Tampered(model, incoming=model_noise)

    handler = MediaHandler(bot_end, connect)
    summaries: list[CallSummary] = []
    records: list[CallRecord] = []

    async def phone_noise() -> None:
        for at, text in plan.phone_noise:
            await anyio.sleep_until(began + at)
            with contextlib.suppress(TransportClosed):
                await caller_end.send(text)

    async def run_caller() -> None:
        records.append(await caller.run(caller_end))

    async def run_handler() -> None:
        summaries.append(await handler.run())

    with anyio.fail_after(600):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_caller)
            tg.start_soon(run_handler)
            tg.start_soon(phone_noise)
    (summary,) = summaries
    (record,) = records
    own = sim.connections
    assert summary.ended_by
    assert bot_end.closed, "the phone connection was left open"
    assert sim.statistics().connections_open == 0, "a model connection was left open"
    if summary.timers is not None:
        assert summary.timers.pending == 0, "a timer outlived its call"
    # A stray start before the caller's own makes the bridge speak on the stray stream: the
    # caller simulator then refuses its messages, rightly, but the bridge cannot know better.
    stray_start = any('"start"' in t for _, t in plan.phone_noise)
    assert stray_start or record.protocol_errors == [], "Twilio would have refused a message"
    # Hung up for no reason of its own call: only a stray stop (or start) from the phone, or a
    # stray function call from the model, may end a call the simulators did not end.
    explained = (
        stray_start
        or any('"stop"' in t for _, t in plan.phone_noise)
        or any("function_call" in t for _, t in plan.model_noise)
    )
    assert explained or not _cut_by_another_call(record, own), summary.ended_by
    assert false_barge_ins(record, own) == 0
    assert truncations_beyond_heard(record, own) == 0
    for cleared_at in record.clears:
        # Invariant 6: nothing of an interrupted answer plays after its clear (a false
        # interruption resumed later may).
        assert record.heard_between(cleared_at + 0.04, cleared_at + 0.1) <= 0.02


@pytest.mark.parametrize(
    "anyio_backend", [("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})]
)
@pytest.mark.anyio
@CALL_RUNS
@given(call_plans())
async def test_drawn_calls_end_cleanly_and_keep_the_invariants(
    anyio_backend: Any, plan: CallPlan
) -> None:
    await play(plan)
