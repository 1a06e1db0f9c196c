"""Memory: the state one call keeps, and the process's memory over many sequential calls.

Usage::

    python benchmarks/memory.py [--json] [--calls 10000] [--smoke]

Method, two parts:

* **per-call state**: a :class:`voiceguard.BridgeCore` is fed a 60 s call directly (sans-IO: a
  Twilio ``start``, 3000 caller frames of line noise with three speech turns, the model's
  responses with their audio deltas, the marks coming back, Twilio ``stop``), measured with
  ``tracemalloc``: the memory it holds when new, and at the end of the call while still alive
  (its rings, the audio references it keeps, the guards' records). It must not grow with the
  length of the call.
* **sequential calls**: ``--calls`` whole calls, one after the other, each a
  :class:`voiceguard.MediaHandler` with its call scope and timers, a
  :class:`~voiceguard.sim.caller.CallerSimulator` (a caller who answers the greeting and hangs up
  after 3 s) and a fresh :class:`~voiceguard.sim.realtime.RealtimeSimulator`, over in-memory
  transports on trio's virtual clock (so 10,000 calls take minutes, not hours). The resident
  memory of the process (``/proc/self/statm``) and the number of objects the garbage collector
  tracks are sampled after every tenth of the calls. Growth is judged from the first sample
  after warm-up (10 % of the calls) to the last.

Target: no growth beyond noise.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import sys
import time
import tracemalloc
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import _bench
import anyio

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


def _call_messages() -> tuple[list[Any], list[tuple[float, str, Any]]]:
    """The Twilio messages and model events of a 60 s call, in order, with their times."""
    from voiceguard.protocol import parse_realtime_event, parse_twilio_message  # noqa: PLC0415
    from voiceguard.sim.signals import line_noise, mix, speech_like  # noqa: PLC0415

    sid = "MZ" + "0" * 32
    start = parse_twilio_message(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": sid,
            "start": {
                "streamSid": sid,
                "accountSid": "AC" + "0" * 32,
                "callSid": "CA" + "0" * 32,
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )
    audio = bytearray(line_noise(60.0, level_dbfs=-60.0, seed=3))
    for at in (12.0, 30.0, 48.0):
        words = mix(speech_like(1.5, level_dbfs=-20.0, seed=int(at)), b"\xff" * 12000)
        audio[int(at * 8000) : int(at * 8000) + len(words)] = words
    timeline: list[tuple[float, str, Any]] = []
    for k in range(3000):
        payload = base64.b64encode(bytes(audio[160 * k : 160 * (k + 1)])).decode("ascii")
        media = {
            "event": "media",
            "sequenceNumber": str(k + 2),
            "streamSid": sid,
            "media": {"track": "inbound", "chunk": str(k + 1), "timestamp": str(20 * k)},
        }
        media["media"]["payload"] = payload  # type: ignore[index]
        timeline.append((0.02 * (k + 1), "phone", parse_twilio_message(media)))
    delta = base64.b64encode(b"\x7f" * 800).decode("ascii")
    for turn, at in enumerate((0.5, 14.0, 32.0, 50.0)):
        rid, iid = f"resp_{turn}", f"item_{turn}"
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": {"id": iid, "type": "message", "role": "assistant", "content": []},
            },
        ]
        events += [
            {
                "type": "response.output_audio.delta",
                "response_id": rid,
                "item_id": iid,
                "output_index": 0,
                "content_index": 0,
                "delta": delta,
            }
        ] * 40  # 4 s of the bot's voice
        events.append(
            {"type": "response.done", "response": {"id": rid, "status": "completed", "output": []}}
        )
        for index, event in enumerate(events):
            raw = {"event_id": f"ev_{turn}_{index}", **event}
            timeline.append((at + 0.025 * index, "model", parse_realtime_event(raw)))
    timeline.sort(key=lambda entry: entry[0])
    return [start], timeline


def state_size() -> dict[str, float]:
    """tracemalloc size of a BridgeCore when new and after a 60 s call."""
    from voiceguard import BridgeCore  # noqa: PLC0415
    from voiceguard.core.bridge import SendToPhone  # noqa: PLC0415
    from voiceguard.protocol import parse_twilio_message  # noqa: PLC0415

    (start,), timeline = _call_messages()
    sid = "MZ" + "0" * 32
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    core = BridgeCore()
    new = tracemalloc.get_traced_memory()[0] - base
    core.on_phone(start, 0.0)
    for now, peer, event in timeline:
        actions = core.on_phone(event, now) if peer == "phone" else core.on_model(event, now)
        while (deadline := core.next_deadline()) is not None and deadline <= now:
            actions += core.on_tick(now)
        for action in actions:
            if isinstance(action, SendToPhone) and action.message.get("event") == "mark":
                name = action.message["mark"]["name"]
                echo = {"event": "mark", "streamSid": sid, "mark": {"name": name}}
                core.on_phone(parse_twilio_message(echo), now)
    gc.collect()
    after_call = tracemalloc.get_traced_memory()[0] - base
    del core
    gc.collect()
    released = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {
        "new_kb": new / 1024,
        "after_60s_call_kb": after_call / 1024,
        "left_after_release_kb": released / 1024,
    }


async def _one_call(number: int) -> str:
    from voiceguard import MediaHandler  # noqa: PLC0415
    from voiceguard.sim.caller import CallerSimulator, HangUp, Speak  # noqa: PLC0415
    from voiceguard.sim.realtime import RealtimeSimulator  # noqa: PLC0415
    from voiceguard.transports import memory_pair  # noqa: PLC0415

    simulator = RealtimeSimulator(seed=number, audio_speed=20.0)
    caller = CallerSimulator(
        script=[Speak(after_heard=1.0, duration=0.8), HangUp(at=3.0)], seed=number
    )

    @asynccontextmanager
    async def connect(_start: object) -> Any:
        async with simulator.connect() as model:
            yield model

    caller_end, bot_end = memory_pair(names=("caller", "bot"))
    summary: list[str] = []

    async def bot() -> None:
        summary.append((await MediaHandler(bot_end, connect).run()).ended_by)

    async with anyio.create_task_group() as tg:
        tg.start_soon(bot)
        await caller.run(caller_end)
    return summary[0]


def sequential(calls: int, progress: bool) -> dict[str, Any]:
    """*calls* calls one after the other on trio's virtual clock; memory samples."""
    from trio.testing import MockClock  # noqa: PLC0415 - a dev dependency

    every = max(1, calls // 10)
    samples: list[dict[str, float]] = []
    ended: dict[str, int] = {}
    began = time.monotonic()

    async def main() -> None:
        for number in range(1, calls + 1):
            how = await _one_call(number)
            ended[how] = ended.get(how, 0) + 1
            if number % every == 0 or number == calls:
                gc.collect()
                samples.append(
                    {
                        "calls": number,
                        "rss_mb": _rss() / 2**20,
                        "gc_objects": len(gc.get_objects()),
                    }
                )
                if progress:
                    print(
                        f"\r  {number}/{calls} calls, RSS {samples[-1]['rss_mb']:.1f} MiB",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )

    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    if progress:
        print(file=sys.stderr)
    first = samples[0]  # after the first tenth of the calls: the warm-up is behind
    last = samples[-1]
    return {
        "calls": calls,
        "seconds": time.monotonic() - began,
        "ended_by": ended,
        "samples": samples,
        "rss_growth_mb": last["rss_mb"] - first["rss_mb"],
        "gc_objects_growth": last["gc_objects"] - first["gc_objects"],
        "rss_growth_per_1000_calls_kb": 1024
        * (last["rss_mb"] - first["rss_mb"])
        * 1000
        / max(1, last["calls"] - first["calls"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="per-call state size and RSS over many calls")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--calls", type=int, default=10_000, help="sequential calls (10000)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check it works")
    args = parser.parse_args()
    if args.smoke:
        args.calls = 20
    size = state_size()
    calls = sequential(args.calls, progress=not args.json)
    result = {
        "method": (
            "tracemalloc size of a BridgeCore fed a 60 s call; RSS and gc-tracked objects "
            "sampled over sequential whole calls (MediaHandler + simulators, virtual time)"
        ),
        "state": size,
        "sequential": calls,
    }
    rows = [[f"{s['calls']}", s["rss_mb"], s["gc_objects"]] for s in calls["samples"]]
    text = (
        f"per-call state (BridgeCore): {size['new_kb']:.0f} KiB new, "
        f"{size['after_60s_call_kb']:.0f} KiB after a 60 s call, "
        f"{size['left_after_release_kb']:.1f} KiB left once released\n\n"
        + _bench.table(["after calls", "RSS MiB", "gc objects"], rows)
        + f"\n\n{calls['calls']} sequential calls in {calls['seconds']:.0f} s "
        f"(ended by: {json.dumps(calls['ended_by'])}); RSS growth after the first sample "
        f"{calls['rss_growth_mb']:+.1f} MiB, gc objects {calls['gc_objects_growth']:+d}"
    )
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
