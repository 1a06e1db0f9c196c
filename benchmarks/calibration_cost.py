"""CPU cost of the per-frame path: decode + energy + CalibrationGate update, per 20 ms frame.

Usage::

    python benchmarks/calibration_cost.py [--json] [--repeats 7]

Method: one call of the corpus (``call0000`` unless ``--case`` says otherwise) is rendered once;
then, for each repeat, a fresh :class:`~voiceguard.CalibrationGate` is fed the
whole call in real order: every inbound frame is decoded to PCM with
:func:`voiceguard.audio.decode_ulaw` (as a bridge that also needs PCM would do) and pushed to the
gate and :meth:`~voiceguard.core.guards.calibration.CalibrationGate.poll_barge_in` is asked for a
late barge-in, every outbound frame of the bot is pushed too, every ``speech_started`` of the
call is judged and every ``speech_stopped`` reported (so suppressed segments are watched as in a
bridge). The process CPU time (``time.process_time``: CPU spent, so other load on a shared
machine does not inflate it; garbage collector on) is divided by the number of inbound frames,
so the figure includes the gate's periodic noise-floor and echo-path updates and its judgements
amortised over the frames. The median of the repeats is
reported (plus min and max). The ``decode+energy`` line times the same decode plus
:func:`voiceguard.audio.ulaw_energy_dbfs` alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))

import corpus

from voiceguard.audio import decode_ulaw, ulaw_energy_dbfs
from voiceguard.core.guards.calibration import CalibrationGate

FRAME = 160


def main() -> None:
    parser = argparse.ArgumentParser(description="per-frame CPU cost of the calibration gate")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--case", default="call0000")
    args = parser.parse_args()
    case = next(c for c in corpus.load_cases() if c["id"] == args.case)
    rendered = corpus.render(case)
    frames = len(rendered.bot_frames)
    inbound = [rendered.inbound[i * FRAME : (i + 1) * FRAME] for i in range(frames)]
    outbound = [rendered.outbound[i * FRAME : (i + 1) * FRAME] for i in range(frames)]
    bot = rendered.bot_frames.tolist()
    events = {e["detected_ms"]: e["audio_start_ms"] for e in case["events"]}
    stops = {e["stopped_ms"] for e in case["events"] if e["stopped_ms"]}

    def gate_run() -> float:
        gate = CalibrationGate()
        started = time.process_time()
        for i in range(frames):
            now = (i + 1) * 0.02
            if bot[i]:
                gate.push_outbound(outbound[i], now)
            decode_ulaw(inbound[i])
            gate.push_inbound(inbound[i], now)
            gate.poll_barge_in(now)
            start_ms = events.get((i + 1) * 20)
            if start_ms is not None:
                gate.judge_speech_started(now, audio_start_ms=start_ms)
            if (i + 1) * 20 in stops:
                gate.speech_stopped(now)
        return (time.process_time() - started) / frames * 1e6

    def decode_run() -> float:
        started = time.process_time()
        for frame in inbound:
            decode_ulaw(frame)
            ulaw_energy_dbfs(frame)
        return (time.process_time() - started) / frames * 1e6

    gate_run()  # warm up
    gate_us = [gate_run() for _ in range(args.repeats)]
    decode_us = [decode_run() for _ in range(args.repeats)]
    result = {
        "method": "median of repeated full-call runs, process CPU microseconds per 20 ms frame",
        "case": args.case,
        "frames": frames,
        "bot_frames": int(sum(bot)),
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "per_frame_us": {
            "decode+energy+gate": statistics.median(gate_us),
            "decode+energy": statistics.median(decode_us),
        },
        "min_max_us": {"decode+energy+gate": [min(gate_us), max(gate_us)]},
        "budget_us": 10.0,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.case}: {frames} frames ({result['bot_frames']} with bot audio), "
        f"{args.repeats} repeats, Python {result['python']} on {result['machine']}"
    )
    for name, value in result["per_frame_us"].items():
        print(f"  {name:>20}: {value:6.2f} us per 20 ms frame (median)")
    print("  budget: 10 us per frame per call")


if __name__ == "__main__":
    main()
