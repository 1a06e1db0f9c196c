"""The benchmarks' hand-written bridge (``benchmarks/handwritten_bridge.py``) does its jobs right.

It runs as the benchmarks run it: a subprocess on port 0, its port read from its
``listening on`` line, connecting to a ``RealtimeSimulator`` on 127.0.0.1 (which refuses every
wrong shape and counts every protocol error). Two concurrent callers dial ``/media-stream``; each
hears the greeting, speaks, hears the answer and barges into it. From the outside: the greeting
arrives as ``media`` each followed by a ``mark``, paced (never much more than the 0.3 s lead
ahead of what has played); every caller frame arrives at the model as an append; the barge-in
gives one Twilio ``clear``, a ``response.cancel`` while the answer is still being generated, and
a truncate at no more than the caller heard; nothing of the cancelled answer plays after the
clear; the model saw no protocol error. Then a wrong path gets 404 and SIGTERM stops the bridge
with exit code 0. Real time: about 10 s.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from voiceguard.sim.caller import CallerSimulator, CallRecord, HangUp, Speak
from voiceguard.sim.realtime import ConnectionRecord, RealtimeSimulator, Reply
from voiceguard.transports import TransportClosed
from voiceguard.transports.websocket import connect_websocket

pytestmark = pytest.mark.anyio

BRIDGE = Path(__file__).resolve().parent.parent / "benchmarks" / "handwritten_bridge.py"
_LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")
#: The bridge's playout lead, and the slack allowed on top (a 20 ms phone frame, the loopback).
LEAD = 0.3
LEAD_SLACK = 0.1
GREETING_S = 1.0
#: Seconds before each model event leaves: deltas of the interrupted answer cross the cancel.
MODEL_LATENCY = 0.08
#: When each caller hangs up: different lengths tell their model connections apart.
HANG_UPS = (8.5, 9.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def bridge(model_url: str, log: Path) -> AsyncIterator[tuple[anyio.abc.Process, int]]:
    """The bridge as a subprocess; yields it and its port, and kills it if it is still running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICEGUARD_"))}
    env["OPENAI_API_KEY"] = "sk-test-handwritten"
    argv = [sys.executable, str(BRIDGE), "--port", "0", "--realtime-url", model_url]
    with log.open("wb") as err:
        process = await anyio.open_process(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        try:
            assert process.stdout is not None
            output = b""
            with anyio.fail_after(15):
                while not (match := _LISTENING.search(output.decode())):
                    output += await process.stdout.receive()
            yield process, int(match.group(2))
        finally:
            if process.returncode is None:
                process.kill()
            with anyio.CancelScope(shield=True):
                await process.aclose()


def media_bytes(record: CallRecord, start: float, end: float) -> int:
    """Bytes of bot audio the caller received within ``[start, end)``."""
    return sum(
        int(m.detail.split()[0])
        for m in record.received
        if m.event == "media" and start <= m.time < end
    )


def max_lead(record: CallRecord, until: float) -> float:
    """The most audio the phone held unplayed (received, not yet heard), before *until*."""
    heard = sorted((h.time, len(h.audio)) for h in record.heard)
    worst, received, index, played = 0.0, 0, 0, 0
    for message in record.received:
        if message.time >= until:
            break
        if message.event != "media":
            continue
        received += int(message.detail.split()[0])
        while index < len(heard) and heard[index][0] <= message.time:
            played += heard[index][1]
            index += 1
        worst = max(worst, (received - played) / 8000)
    return worst


def check_call(record: CallRecord, model: ConnectionRecord, hang_up: float) -> None:
    assert len(record.spoke) == 2, record.skipped
    turn, barge = record.spoke
    # What the bridge sent first: the session in the GA shape, then the greeting.
    first = [e for e in model.log if e.direction == "received"][:2]
    assert [e.type for e in first] == ["session.update", "response.create"]
    session: Any = first[0].event["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    detection = session["audio"]["input"]["turn_detection"]
    assert detection["type"] == "server_vad"
    assert (detection["create_response"], detection["interrupt_response"]) == (True, False)
    assert "instructions" in first[1].event["response"]
    # The greeting: media, each chunk followed by its mark, all played before the caller spoke.
    greeting = [m.event for m in record.received if m.time < turn[0]]
    assert len(greeting) >= 20
    assert greeting == ["media", "mark"] * (len(greeting) // 2)
    assert record.heard_between(0, turn[0]) == pytest.approx(GREETING_S, abs=0.02)
    assert len(record.played_marks()) >= len(greeting) // 2
    # Every caller frame reached the model, as an append.
    frames = sum(1 for _, event in record.sent if event == "media")
    assert frames == round(hang_up / 0.02)
    assert len(model.received("input_audio_buffer.append")) == frames
    # The barge-in: one clear (none at the first turn: nothing was playing) ...
    assert len(record.clears) == 1, record.clears
    cleared = record.clears[0]
    assert barge[0] < cleared < barge[1]
    assert max_lead(record, cleared) <= LEAD + LEAD_SLACK  # paced until then
    # ... one cancel, which found the answer still active (the server's reason says so) ...
    assert len(model.received("response.cancel")) == 1
    done = [e.event["response"] for e in model.sent("response.done")]
    stopped = [r for r in done if r["status"] != "completed"]
    assert [r["status_details"]["reason"] for r in stopped] == ["client_cancelled"]
    # ... one truncate of its item, at the heard position: no more than was sent or heard ...
    truncates = model.received("conversation.item.truncate")
    assert len(truncates) == 1
    assert truncates[0].event["item_id"] == stopped[0]["output"][0]["id"]
    end_ms = truncates[0].event["audio_end_ms"]
    sent_ms = media_bytes(record, turn[1], cleared) / 8
    heard_ms = record.heard_between(turn[1], cleared) * 1000
    assert end_ms <= heard_ms <= sent_ms
    assert end_ms >= heard_ms - 400  # a mark per 100 ms chunk, and the time to react
    # ... and none of the cancelled answer's late audio (the model latency makes some) plays.
    interrupted = model.sent("input_audio_buffer.speech_started")[-1].time
    late = [
        e
        for e in model.sent("response.output_audio.delta")
        if e.event["response_id"] == stopped[0]["id"] and e.time > interrupted
    ]
    assert late
    assert media_bytes(record, cleared, barge[1]) == 0
    assert record.heard_between(barge[1]) > 0
    assert model.errors == []
    assert record.protocol_errors == []


async def test_greeting_pacing_appends_and_barge_in(tmp_path: Path) -> None:
    simulator = RealtimeSimulator(
        replies=[Reply(duration=GREETING_S), Reply(duration=8.0)],
        default_reply=Reply(duration=1.0),
        latency=MODEL_LATENCY,
    )
    callers = [
        CallerSimulator(
            script=[
                Speak(at=2.0, duration=1.0),
                Speak(after_heard=GREETING_S + 1.0, duration=1.0),
                HangUp(at=at),
            ],
            seed=index,
        )
        for index, at in enumerate(HANG_UPS)
    ]
    records: list[CallRecord] = []
    with anyio.fail_after(20):
        async with (
            simulator.running() as address,
            bridge(address.url, tmp_path / "stderr.txt") as (process, port),
        ):
            url = f"ws://127.0.0.1:{port}/media-stream"

            async def call(caller: CallerSimulator) -> None:
                records.append(await caller.call(url))

            async with anyio.create_task_group() as tg:
                for caller in callers:
                    tg.start_soon(call, caller)
            while any(c.open for c in simulator.connections):
                await anyio.sleep(0.05)
            with pytest.raises(TransportClosed, match="404"):
                async with connect_websocket(f"ws://127.0.0.1:{port}/elsewhere"):
                    pass
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    assert simulator.statistics().errors_total == 0
    assert simulator.statistics().responses_cancelled == len(callers)
    models = sorted(
        simulator.connections, key=lambda c: len(c.received("input_audio_buffer.append"))
    )
    by_length = sorted(records, key=lambda r: len(r.sent))
    for record, model, hang_up in zip(by_length, models, HANG_UPS, strict=True):
        assert record.ended_by == "caller"
        check_call(record, model, hang_up)
