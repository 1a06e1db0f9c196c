"""CPU cost of each guard decision and of each CallState update, per event.

Usage::

    python benchmarks/guard_cost.py [--json] [--turns 2000] [--repeats 7] [--smoke]

Method: a synthetic call of ``--turns`` turns is played straight into the guards, with the wire
events parsed once beforehand (parsing is the protocol edge's cost, measured by
``inbound_path.py``). Each turn: a caller turn asks the create guard (allowed), the model's
``response.created`` and 10 audio deltas are observed, a watchdog create (suppressed: a response
is active) and a turn create (deferred) are asked, a barge-in cancel is asked (allowed) and asked
again (suppressed: already sent), ``response.done`` is observed and the deferred create released.
Every operation is timed on its own with ``time.perf_counter_ns``; the median of each kind is
taken over all turns, the timer's own overhead (the median of an empty timed region) is
subtracted, and the median over ``--repeats`` repeats is reported. Call-scoped timers are timed
the same way inside a running :class:`~voiceguard.runtime.scope.CallScope` (the watchdog is re-armed
and cancelled once per turn). The calibration gate's judgement of a ``speech_started`` (a few
per call, not per frame) is timed on a gate calibrated on 3 s of line noise: suppressed, allowed,
and over 2 s of the bot's speech on a line with no echo (the echo path unknown: the gate bounds the
echo at every delay it searches).

Target: median <= 2 microseconds per event for every decision and state update.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import _bench
import anyio
import numpy as np

from voiceguard import CallScope, CallState, CancelArbiter, ResponseCreateGuard
from voiceguard.audio import FRAME_BYTES, encode_ulaw
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.create import CreateOrigin, CreatePolicy, CreateRequest
from voiceguard.protocol.realtime import parse_realtime_event

TARGET_US = 2.0
_WATCHDOG = CreateRequest(
    origin=CreateOrigin.AUTOMATIC, policy=CreatePolicy.DROP, require_playback_idle=True
)
_TURN = CreateRequest(label="turn")


def _events(turn: int) -> dict[str, Any]:
    events = _response(f"resp_{turn}", f"item_{turn}", f"e{turn}")
    again = _response(f"resp_{turn}b", f"item_{turn}b", f"e{turn}b")
    events["created_again"], events["done_again"] = again["created"], again["done"]
    return events


def _response(rid: str, iid: str, turn: str) -> dict[str, Any]:
    payload = "/" * 1064  # 800 bytes of mu-law (100 ms) in base64
    return {
        "created": parse_realtime_event(
            {
                "type": "response.created",
                "event_id": f"e{turn}c",
                "response": {"id": rid, "object": "realtime.response", "status": "in_progress"},
            }
        ),
        "item": parse_realtime_event(
            {
                "type": "response.output_item.added",
                "event_id": f"e{turn}i",
                "response_id": rid,
                "output_index": 0,
                "item": {"id": iid, "type": "message", "role": "assistant", "content": []},
            }
        ),
        "delta": parse_realtime_event(
            {
                "type": "response.output_audio.delta",
                "event_id": f"e{turn}d",
                "response_id": rid,
                "item_id": iid,
                "output_index": 0,
                "content_index": 0,
                "delta": payload,
            }
        ),
        "done": parse_realtime_event(
            {
                "type": "response.done",
                "event_id": f"e{turn}x",
                "response": {
                    "id": rid,
                    "object": "realtime.response",
                    "status": "cancelled",
                    "status_details": {"type": "cancelled", "reason": "client_cancelled"},
                    "output": [],
                },
            }
        ),
    }


def _session_updated() -> Any:
    vad = {"type": "server_vad", "interrupt_response": False, "create_response": False}
    return parse_realtime_event(
        {
            "type": "session.updated",
            "event_id": "e0",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"format": {"type": "audio/pcmu"}, "turn_detection": vad},
                    "output": {"format": {"type": "audio/pcmu"}},
                },
            },
        }
    )


def _overhead() -> float:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(20_000):
        t0 = clock()
        samples.append(clock() - t0)
    return _bench.median(samples)


def guards_run(turns: list[dict[str, Any]]) -> dict[str, float]:
    """One pass over the call; the median ns of each kind of operation."""
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = defaultdict(list)
    state = CallState()
    cancels = CancelArbiter(state)
    creates = ResponseCreateGuard(state)
    state.observe(_session_updated())
    now = 0.0

    def timed(kind: str, op: Callable[..., Any], *args: object) -> Any:
        t0 = clock()
        result = op(*args)
        samples[kind].append(clock() - t0)
        return result

    observe = state.observe
    for events in turns:
        now += 10.0
        decision = timed("ResponseCreateGuard.request (allowed)", creates.request, _TURN, now)
        assert decision.allowed, decision
        timed("CallState.observe(response.created)", observe, events["created"])
        timed("CallState.observe(output_item.added)", observe, events["item"])
        for _ in range(10):
            timed("CallState.observe(audio delta)", observe, events["delta"])
        timed("ResponseCreateGuard.release (nothing held)", creates.release, now)
        decision = timed(
            "ResponseCreateGuard.request (suppressed)", creates.request, _WATCHDOG, now
        )
        assert decision.suppressed, decision
        decision = timed("ResponseCreateGuard.request (deferred)", creates.request, _TURN, now)
        assert decision.deferred, decision
        decision = timed("CancelArbiter.request (allowed)", cancels.request, now + 1.0)
        assert decision.allowed, decision
        decision = timed("CancelArbiter.request (suppressed)", cancels.request, now + 1.1)
        assert decision.suppressed, decision
        timed("CallState.observe(response.done)", observe, events["done"])
        released = timed("ResponseCreateGuard.release (released)", creates.release, now)
        assert released is not None
        observe(events["created_again"])
        observe(events["done_again"])
    return {kind: _bench.median(values) for kind, values in samples.items()}


def timers_run(turns: int) -> dict[str, float]:
    """Re-arm and cancel a call-scoped timer *turns* times inside a running scope."""
    samples: dict[str, list[int]] = defaultdict(list)
    clock = time.perf_counter_ns

    async def main() -> None:
        async with CallScope(call_sid="CA1", stream_sid="MZ1") as scope:
            timer = scope.timer("watchdog", 3.0, lambda: None)
            for _ in range(turns):
                t0 = clock()
                timer.restart()
                samples["CallScopedTimer.restart (arm)"].append(clock() - t0)
                t0 = clock()
                timer.restart()
                samples["CallScopedTimer.restart (re-arm pending)"].append(clock() - t0)
                t0 = clock()
                timer.cancel()
                samples["CallScopedTimer.cancel"].append(clock() - t0)
                await anyio.sleep(0)  # let the timer task see its cancellation and finish

    anyio.run(main)
    return {kind: _bench.median(values) for kind, values in samples.items()}


def judge_run(repeats: int) -> dict[str, float]:
    """A speech_started judged on a gate calibrated on 3 s of noise (suppressed, and allowed), and
    one over the bot's speech with the echo path unknown."""
    rng = np.random.default_rng(1)
    noise = [
        encode_ulaw(np.clip(rng.normal(0, 40, FRAME_BYTES), -32768, 32767).astype(np.int16))
        for _ in range(150)
    ]
    t = np.arange(FRAME_BYTES * 20) / 8000.0
    voiced = 3000 * sum(
        np.sin(2 * np.pi * f * t) / k for k, f in enumerate((200, 600, 1000, 1400, 2200), 1)
    )
    speech = encode_ulaw(voiced.astype(np.int16))
    samples: dict[str, list[int]] = defaultdict(list)
    clock = time.perf_counter_ns
    for _ in range(repeats):
        gate = CalibrationGate()
        now = 0.0
        for frame in noise:
            now += 0.02
            gate.push_inbound(frame, now)
        t0 = clock()
        gate.judge_speech_started(now)
        samples["CalibrationGate.judge_speech_started (suppressed)"].append(clock() - t0)
        gate.speech_stopped(now)
        for start in range(0, len(speech), FRAME_BYTES):
            now += 0.02
            gate.push_inbound(speech[start : start + FRAME_BYTES], now)
        t0 = clock()
        decision = gate.judge_speech_started(now, audio_start_ms=round(1000 * now) - 400)
        samples["CalibrationGate.judge_speech_started (allowed)"].append(clock() - t0)
        assert decision.allowed, decision
        # A barge-in over the bot on a line with no echo: 2 s of the bot's speech, the caller
        # starts talking over it, and no echo path is known (the gate bounds the echo at every
        # delay from what the line showed while the bot talked).
        gate.speech_stopped(now)
        for index in range(100):
            now += 0.02
            gate.push_outbound(speech[(index % 20) * FRAME_BYTES :][:FRAME_BYTES], now)
            gate.push_inbound(noise[index % len(noise)], now)
        for start in range(0, len(speech), FRAME_BYTES):
            now += 0.02
            gate.push_outbound(speech[start : start + FRAME_BYTES], now)
            gate.push_inbound(speech[start : start + FRAME_BYTES], now)
        t0 = clock()
        gate.judge_speech_started(now, audio_start_ms=round(1000 * now) - 400)
        samples["CalibrationGate.judge_speech_started (over the bot, echo unknown)"].append(
            clock() - t0
        )
    return {kind: _bench.median(values) for kind, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU cost per guard decision and state update")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--turns", type=int, default=2000, help="turns per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=7, help="runs (default 7)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check it works")
    args = parser.parse_args()
    if args.smoke:
        args.turns, args.repeats = 20, 1
    turns = [_events(i) for i in range(args.turns)]
    overhead = _overhead()
    guards_run(turns)  # warm up
    runs: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        gc.collect()
        for kind, ns in guards_run(turns).items():
            runs[kind].append(ns)
        for kind, ns in timers_run(args.turns).items():
            runs[kind].append(ns)
        for kind, ns in judge_run(max(3, args.turns // 100)).items():
            runs[kind].append(ns)
    per_event = {
        kind: max(0.0, (_bench.median(values) - overhead) / 1000) for kind, values in runs.items()
    }
    per_event_kinds = [k for k in per_event if not k.startswith("CalibrationGate")]
    result = {
        "method": (
            "median over repeats of the per-kind median of individually timed operations "
            "(perf_counter_ns, timer overhead subtracted), microseconds per event"
        ),
        "turns": args.turns,
        "repeats": args.repeats,
        "timer_overhead_ns": overhead,
        "per_event_us": per_event,
        "target_us": TARGET_US,
        "worst_us": max(per_event[k] for k in per_event_kinds),
        "target_met": all(per_event[k] <= TARGET_US for k in per_event_kinds),
    }
    rows = [
        [kind, us, "per speech_started" if kind.startswith("CalibrationGate") else "per event"]
        for kind, us in per_event.items()
    ]
    text = _bench.table(["operation", "median us", "counted"], rows)
    text += (
        f"\n\ntarget: <= {TARGET_US:g} us per event for decisions and state updates: "
        f"worst {result['worst_us']:.2f} us, {'met' if result['target_met'] else 'NOT met'}"
    )
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
