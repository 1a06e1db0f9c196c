"""CPU cost per caller frame of the bridge's inbound path, against the bare JSON floor.

Usage::

    python benchmarks/inbound_path.py [--json] [--repeats 15] [--smoke]

Method: one corpus call (``call0000``: 668 frames of a real line, caller speech, echo and noise)
is turned into the Twilio ``media`` messages a bridge receives (JSON text, base64 payload). For
each repeat, every message is put through, in order:

* **floor**: ``json.loads`` of the message and ``json.dumps`` (default options, its fastest) of
  the ``input_audio_buffer.append`` that carries its payload: what any bridge must do at the
  least (parse, re-serialise), with nothing checked;
* **parse**: :func:`voiceguard.protocol.parse_twilio_message` (every field checked, the payload
  base64-decoded once for the gate);
* **parse + append**: that, plus the append built by
  :func:`voiceguard.protocol.input_audio_append` with the payload passed through untouched and
  serialised by :func:`voiceguard.protocol.dumps`;
* **bridge (guards on)**: the whole inbound path of the reference bridge: parse,
  :meth:`voiceguard.BridgeCore.on_phone` (append, energy from the mu-law bytes, calibration gate
  update, late barge-in poll) and ``dumps`` of every message it returns;
* **bridge (guards off)**: the same with the guards replaced by ones that allow everything
  (``benchmarks/_unguarded.py``), so the calibration gate is never fed;
* **parse, Telnyx's / Plivo's words**: the same frames as those providers send them, translated
  to Twilio's (what :class:`voiceguard.DialectTransport` does for ``voiceguard serve --phone``)
  and parsed: the cost of another phone provider (a Twilio frame is not translated);
* **parse, Vonage's frames at 8 / 16 kHz**: the same audio as Vonage sends it, binary 16-bit
  linear PCM (at 16 kHz resampled from the corpus' 8 kHz), turned into Twilio's ``media`` by
  Vonage's line (companded; at 16 kHz also filtered and decimated) and parsed.

CPU is ``time.process_time`` over the whole call divided by its frames; the median of the
repeats is reported, with the ratio to the floor measured in the same run.

Target: bridge (guards on) <= 3x the floor.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _bench

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))

import corpus
from _unguarded import unguarded_core

from voiceguard import BridgeCore
from voiceguard.audio import UlawUpsampler
from voiceguard.core.bridge import SendToModel, SendToPhone
from voiceguard.protocol import PHONES, dumps, input_audio_append, parse_twilio_message

FRAME = 160
TARGET_RATIO = 3.0
STREAM_SID = "MZ" + "0" * 32


def twilio_messages(case_id: str, frames: int | None) -> tuple[str, list[str]]:
    """The ``start`` message and the ``media`` messages of a corpus call."""
    case = next(c for c in corpus.load_cases() if c["id"] == case_id)
    inbound = corpus.render(case).inbound
    count = len(inbound) // FRAME if frames is None else min(frames, len(inbound) // FRAME)
    start = json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": STREAM_SID,
            "start": {
                "streamSid": STREAM_SID,
                "accountSid": "AC" + "0" * 32,
                "callSid": "CA" + "0" * 32,
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )
    media = [
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(i + 2),
                "streamSid": STREAM_SID,
                "media": {
                    "track": "inbound",
                    "chunk": str(i + 1),
                    "timestamp": str(20 * i),
                    "payload": base64.b64encode(bytes(inbound[i * FRAME : (i + 1) * FRAME])).decode(
                        "ascii"
                    ),
                },
            }
        )
        for i in range(count)
    ]
    return start, media


def _floor(messages: list[str]) -> None:
    loads, dumps_ = json.loads, json.dumps
    for text in messages:
        data = loads(text)
        dumps_({"type": "input_audio_buffer.append", "audio": data["media"]["payload"]})


def _parse(messages: list[str]) -> None:
    for text in messages:
        parse_twilio_message(text)


def _parse_append(messages: list[str]) -> None:
    for text in messages:
        event = parse_twilio_message(text)
        dumps(input_audio_append(event.payload))  # type: ignore[union-attr]


def _bridge(start: str, *, guards: bool) -> Callable[[list[str]], None]:
    def run(messages: list[str]) -> None:
        core = BridgeCore() if guards else unguarded_core()
        core.on_phone(parse_twilio_message(start), 0.0)
        now = 0.0
        for text in messages:
            now += 0.02
            for action in core.on_phone(parse_twilio_message(text), now):
                if isinstance(action, (SendToModel, SendToPhone)):
                    dumps(action.message)

    return run


def _dialect_parse(name: str, messages: list[str]) -> tuple[list[str], Callable[[list[str]], None]]:
    """*messages* in provider *name*'s words, and the path that translates and parses them."""
    dialect = PHONES[name]
    worded = [json.dumps(dialect.caller_out(json.loads(text))) for text in messages]

    def run(texts: list[str]) -> None:
        for text in texts:
            # What DialectTransport does with each message: read, translate, write Twilio's.
            translated = dialect.from_phone(json.loads(text))
            parse_twilio_message(json.dumps(translated, separators=(",", ":")))

    return worded, run


def _vonage_parse(
    rate: int, messages: list[str]
) -> tuple[list[bytes], Callable[[list[bytes]], None]]:
    """*messages*' audio as Vonage's binary frames at *rate*, and the path that reads them."""
    upsampler = UlawUpsampler(rate)
    frames = [
        upsampler.feed(base64.b64decode(json.loads(text)["media"]["payload"])) for text in messages
    ]
    connected = json.dumps(
        {"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}"}
    )
    vonage = PHONES["vonage"].line
    assert vonage is not None

    def run(binary: list[bytes]) -> None:
        line = vonage(False)  # a new call: what DialectTransport does with each message
        line.incoming(connected)
        for frame in binary:
            for text in line.incoming(frame):
                parse_twilio_message(text)

    return frames, run


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per frame of the inbound path vs. floor")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--repeats", type=int, default=15, help="runs (default 15)")
    parser.add_argument("--case", default="call0000", help="corpus call (default call0000)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check it works")
    args = parser.parse_args()
    frames = None
    if args.smoke:
        args.repeats, frames = 1, 50
    start, messages = twilio_messages(args.case, frames)
    paths: dict[str, Callable[[list[Any]], None]] = {
        "floor (json.loads + json.dumps)": _floor,
        "parse": _parse,
        "parse + append": _parse_append,
        "bridge (guards off)": _bridge(start, guards=False),
        "bridge (guards on)": _bridge(start, guards=True),
    }
    inputs: dict[str, list[Any]] = dict.fromkeys(paths, messages)
    for name in ("telnyx", "plivo"):
        worded, run = _dialect_parse(name, messages)
        label = f"parse, {PHONES[name].title}'s words"
        paths[label], inputs[label] = run, worded
    for rate in (8000, 16000):
        binary, read = _vonage_parse(rate, messages)
        label = f"parse, Vonage's frames at {rate // 1000} kHz"
        paths[label], inputs[label] = read, binary
    for name, run in paths.items():
        run(inputs[name])  # warm up
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, run in paths.items():  # interleaved, so drifting load hits every path alike
            gc.collect()
            began = time.process_time()
            run(inputs[name])
            samples[name].append((time.process_time() - began) / len(messages) * 1e6)
    per_frame = {name: _bench.median(values) for name, values in samples.items()}
    floor = per_frame["floor (json.loads + json.dumps)"]
    ratio = {name: value / floor for name, value in per_frame.items()}
    result = {
        "method": (
            "process CPU over one corpus call divided by its frames, median of interleaved "
            "repeats; ratio to the bare JSON floor of the same run"
        ),
        "case": args.case,
        "frames": len(messages),
        "repeats": args.repeats,
        "per_frame_us": per_frame,
        "ratio_to_floor": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio["bridge (guards on)"] <= TARGET_RATIO,
    }
    rows = [[name, per_frame[name], f"{ratio[name]:.2f}x"] for name in paths]
    text = _bench.table(["path", "us per 20 ms frame", "vs floor"], rows)
    text += (
        f"\n\n{len(messages)} frames of {args.case}, median of {args.repeats} repeats. Target: "
        f"bridge (guards on) <= {TARGET_RATIO:g}x the floor: "
        f"{'met' if result['target_met'] else 'NOT met'}"
    )
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
