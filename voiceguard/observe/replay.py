"""Replay a call trace through the guards, and draw it on one time axis.

:func:`replay` feeds the inputs recorded in a trace (:mod:`voiceguard.observe.trace`) to a fresh
:class:`~voiceguard.BridgeCore`, at the times they were recorded at: the guards' clock is the
trace's clock, so the replay is deterministic and its decisions can be compared one by one with
the recorded ones. With another configuration (``config=``, ``voiceguard replay --config``) the
differences show what the change would have done to that call.

The call's timers (the lost-create watch, idle prompts, maximum duration, hang-up fallback) are
the engine's own deadlines and fire on the recorded inputs and ticks; a ``timer`` record (what
fired, for the timeline) replays as one more tick at its time.

A replay is open-loop: the model's and the caller's recorded messages do not answer the replayed
actions. Up to the first difference the replay is exact; after it, later differences may be
consequences of the first.

:func:`render_timeline` draws a trace as a self-contained SVG (lanes for the bot's audio sent and
heard, the caller's energy with the echo estimate and noise floor, the server VAD, responses,
each guard's decisions coloured by verdict, the actions sent and the timers), with a hover title
on every mark; :func:`write_timeline` writes it as ``.svg``, as ``.html`` (the SVG plus a decision
table), or as ``.png`` (the HTML photographed by headless Chromium). The drawing lives in modules
of its own and is re-exported here.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from voiceguard.config import BridgeConfig
from voiceguard.core.bridge import BridgeAction, BridgeCore, SendToModel, SendToPhone
from voiceguard.decisions import Decision
from voiceguard.errors import ConfigError, RemoteProtocolError, ToolError
from voiceguard.observe._decisions import (
    DecisionDifference,
    ReplayResult,
    TraceDecision,
    start_time,
)
from voiceguard.observe._timeline import render_timeline
from voiceguard.observe._timeline_files import (
    find_chromium,
    screenshot_html,
    timeline_html,
    write_timeline,
)
from voiceguard.observe.trace import (
    Trace,
    TraceError,
    bridge_config_from_mapping,
    decision_record,
    load_trace,
)
from voiceguard.protocol import parse_realtime_event, parse_twilio_message
from voiceguard.tools import Tool

__all__ = (
    "DecisionDifference",
    "ReplayResult",
    "TraceDecision",
    "find_chromium",
    "render_timeline",
    "replay",
    "screenshot_html",
    "timeline_html",
    "write_timeline",
)


def _feed(core: BridgeCore, record: Mapping[str, Any], where: str) -> list[BridgeAction]:
    kind = record["k"]
    t = float(record["t"])
    if kind == "in":
        message: object = record["msg"] if "msg" in record else record["text"]
        try:
            if record["peer"] == "phone":
                return core.on_phone(parse_twilio_message(message), t)  # type: ignore[arg-type]
            event = parse_realtime_event(message, audio_format=core.state.audio_format)
        except RemoteProtocolError as exc:
            raise TraceError(f"{where}: the recorded message does not parse: {exc}") from None
        return core.on_model(event, t)
    if kind == "tool":
        return core.tool_result(str(record["call_id"]), str(record["output"]), t)
    if kind == "tick":
        return core.on_tick(t)
    if kind == "close":
        return core.close(t)
    if kind == "timer":
        # The engine's own timers fire inside a tick or an input recorded before them, and a
        # second tick at the same time finds nothing more due; in a trace from before the turn
        # engine (the runtime ran the timers), the tick is what makes the engine look.
        return core.on_tick(t)
    return []


def _pair(
    recorded: Sequence[TraceDecision], replayed: Sequence[TraceDecision]
) -> list[DecisionDifference]:
    """Pair the decisions of one differing stretch: same time and action, else alone."""
    unused = list(replayed)
    out: list[DecisionDifference] = []
    for old in recorded:
        match = next(
            (new for new in unused if new.action == old.action and abs(new.t - old.t) < 1e-6),
            None,
        )
        if match is not None:
            unused.remove(match)
        out.append(DecisionDifference(recorded=old, replayed=match))
    out += [DecisionDifference(recorded=None, replayed=new) for new in unused]
    out.sort(key=lambda d: d.t)
    return out


def replay(trace: Trace, *, config: BridgeConfig | None = None) -> ReplayResult:
    """Feed *trace*'s recorded inputs to a fresh bridge and compare its decisions.

    Args:
        trace: A trace from :func:`~voiceguard.observe.trace.load_trace`, recorded with audio.
        config: The bridge configuration to replay with; None uses the recorded one.

    Returns:
        The replayed decisions, the recorded ones and their differences.

    Raises:
        TraceError: If the trace was recorded without audio (the calibration gate cannot judge
            energy it never saw), or a recorded message does not parse (naming the line).

    .. versionadded:: 0.1.0
    """
    if trace.audio != "full":
        raise TraceError(
            f"{trace.path}: recorded without audio (payloads replaced by their length and "
            "energy), so the calibration gate cannot re-judge it; record with audio "
            '(TraceRecorder(audio="full"), voiceguard serve --trace-audio) to replay'
        )
    recorded_config = trace.config
    used = config if config is not None else recorded_config
    replayed: list[TraceDecision] = []
    now = [0.0]

    def sink(decision: Decision) -> None:
        replayed.append(TraceDecision.from_record(decision_record(decision, now[0])))

    core = BridgeCore(config=used, on_decision=sink, tools=_recorded_tools(trace))
    sent: list[tuple[float, str]] = []
    lines = trace.lines or tuple(range(2, len(trace.records) + 2))
    for record, number in zip(trace.records, lines, strict=True):
        now[0] = float(record["t"])
        for action in _feed(core, record, f"{trace.path}:{number}"):
            if isinstance(action, (SendToModel, SendToPhone)):
                kind = action.message.get("type") or action.message.get("event")
                if kind not in ("media", "mark", "input_audio_buffer.append"):
                    sent.append((now[0], str(kind)))
    recorded = [TraceDecision.from_record(r) for r in trace.decisions()]
    differences: list[DecisionDifference] = []
    matcher = difflib.SequenceMatcher(
        a=[d.key for d in recorded], b=[d.key for d in replayed], autojunk=False
    )
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "equal":
            differences += _pair(recorded[a0:a1], replayed[b0:b1])
    stats = core.gate.statistics()
    return ReplayResult(
        trace=trace,
        config=used,
        config_changed=used != recorded_config,
        recorded=tuple(recorded),
        replayed=tuple(replayed),
        differences=tuple(differences),
        sent=tuple(sent),
        gate={
            "noise_floor_dbfs": stats.noise_floor_dbfs,
            "echo_delay_ms": stats.echo_delay_ms,
            "echo_return_loss_db": stats.echo_return_loss_db,
            "echo_confidence": stats.echo_confidence,
        },
    )


def _recorded_tools(trace: Trace) -> list[Tool]:
    """The tools the call offered, as the replayed bridge offers them (never run: their results
    come from the trace)."""
    tools = []
    for definition in trace.tools:
        try:
            tools.append(
                Tool(
                    name=str(definition.get("name")),
                    function=_not_run,
                    description=str(definition.get("description", "")),
                    parameters=definition.get("parameters") or {"type": "object"},
                )
            )
        except ToolError as exc:
            raise TraceError(f"{trace.path}:1: a recorded tool is invalid: {exc}") from None
    return tools


def _not_run(**_: object) -> None:
    raise AssertionError("a replayed tool is never run: its result is in the trace")


def _recorded_decisions_text(trace: Trace) -> str:
    """The recorded decisions of *trace* as text (for a trace that cannot be replayed)."""
    t0 = start_time(trace)
    lines = [
        f"trace {trace.path} (call {trace.call_sid or '?'}): "
        f"{len(trace.decisions())} decisions recorded"
    ]
    lines += ["  " + TraceDecision.from_record(r).describe(t0) for r in trace.decisions()]
    return "\n".join(lines)


def _config_override(path: str | os.PathLike[str], base: BridgeConfig) -> BridgeConfig:
    """Read a JSON file of :class:`~voiceguard.BridgeConfig` fields and apply it over *base*.

    Raises:
        TraceError: If the file cannot be read or is not JSON.
        ConfigError: For an unknown field or a value out of range.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceError(f"--config {file}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"--config {file}: cannot read it: {exc}") from None
    except ValueError as exc:
        raise TraceError(f"--config {file}: not JSON: {exc}") from None
    return bridge_config_from_mapping(data, base=base)


# ============================================================================================
# `voiceguard replay`

#: The suffixes :func:`write_timeline` knows, as its message for another one names them.
_TIMELINE_SUFFIXES = (".html", ".htm", ".svg", ".png")


def _timeline_problem(text: str) -> str | None:
    """Why the timeline could not be written to *text*, or None: known before the replay."""
    target = Path(text)
    suffix = target.suffix.lower()
    if suffix not in _TIMELINE_SUFFIXES:
        return f"unknown suffix {suffix or '(none)'!r}; use .html, .svg or .png"
    if suffix == ".png" and find_chromium() is None:
        return (
            "drawing a PNG needs Chromium (Debian/Ubuntu: apt-get install chromium); "
            "or write the timeline as .svg or .html, which need nothing"
        )
    if target.is_dir():
        return "is a directory; name the file to write"
    directory = target.parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        return f"cannot write there: {directory} {what}"
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return f"cannot write there: {exc.strerror or exc}"
    return None


def _replay_command(args: argparse.Namespace) -> int:
    if args.timeline and (problem := _timeline_problem(args.timeline)) is not None:
        print(f"voiceguard replay: --timeline {args.timeline}: {problem}", file=sys.stderr)
        return 2
    try:
        trace = load_trace(args.trace)
    except TraceError as exc:
        print(f"voiceguard replay: {exc}", file=sys.stderr)
        return 2
    result: ReplayResult | None = None
    status = 0
    try:
        config = _config_override(args.config, trace.config) if args.config else None
        result = replay(trace, config=config)
    except ConfigError as exc:
        print(f"voiceguard replay: --config {args.config}: {exc}", file=sys.stderr)
        return 2
    except TraceError as exc:
        if args.config or "recorded without audio" not in str(exc):
            print(f"voiceguard replay: {exc}", file=sys.stderr)
            return 2
        print(f"voiceguard replay: {exc}; showing the recorded decisions", file=sys.stderr)
        print(_recorded_decisions_text(trace))
    if result is not None:
        print(result.render())
        if result.differences and not result.config_changed:
            status = 1
    if args.timeline:
        try:
            written = write_timeline(args.timeline, trace, result)
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"voiceguard replay: --timeline {args.timeline}: {exc}", file=sys.stderr)
            return 2
        print(f"timeline written to {written}", file=sys.stderr)
    return status


def add_replay_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``voiceguard replay`` with the command line's subcommands.

    Args:
        commands: The subcommands of the ``voiceguard`` parser.
    """
    command = commands.add_parser(
        "replay",
        help="replay a call trace through the guards and draw its timeline",
        description=(
            "Feed a call trace (written by voiceguard serve --trace-dir or voiceguard demo "
            "--trace) through the guards, with the trace's clock as theirs, and print every "
            "decision with its reason. Decisions that differ from the recorded ones are flagged "
            "with '!'. With --config, replay with changed settings to see what they would have "
            "done to the call. Exits 0 when the replay matches (or a --config replay ran), 1 when "
            "a replay with the recorded configuration differs, 2 on bad input."
        ),
    )
    command.add_argument("trace", metavar="TRACE", help="a trace file (.jsonl)")
    command.add_argument(
        "--config",
        metavar="FILE",
        help='a JSON file of BridgeConfig fields to change, e.g. {"calibration": '
        '{"speech_margin_db": 8}, "confirm_barge_in": 0.4}',
    )
    command.add_argument(
        "--timeline",
        metavar="OUT",
        help="draw the call on one time axis: OUT.html (with a decision table), OUT.svg, or "
        "OUT.png (needs Chromium)",
    )
    command.set_defaults(handler=_replay_command)
