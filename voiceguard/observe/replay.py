"""Replay a call trace through the guards, and draw it on one time axis.

:func:`replay` feeds the inputs recorded in a trace (:mod:`voiceguard.observe.trace`) to a fresh
:class:`~voiceguard.BridgeCore`, at the times they were recorded at: the guards' clock is the
trace's clock, so the replay is deterministic and its decisions can be compared one by one with
the recorded ones. With another configuration (``config=``, ``voiceguard replay --config``) the
differences show what the change would have done to that call.

A replay is open-loop: the model's and the caller's recorded messages do not answer the replayed
actions. Up to the first difference the replay is exact; after it, later differences may be
consequences of the first.

:func:`render_timeline` draws a trace as a self-contained SVG (lanes for the bot's audio sent and
heard, the caller's energy with the echo estimate and noise floor, the server VAD, responses,
each guard's decisions coloured by verdict, the actions sent and the timers), with a hover title
on every mark; :func:`write_timeline` writes it as ``.svg``, as ``.html`` (the SVG plus a decision
table), or as ``.png`` (the HTML photographed by headless Chromium).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import base64
import binascii
import difflib
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, final

from voiceguard.audio import SILENCE_DBFS, ulaw_energy_dbfs
from voiceguard.config import BridgeConfig
from voiceguard.core.bridge import BridgeAction, BridgeCore, SendToModel, SendToPhone
from voiceguard.decisions import Decision
from voiceguard.errors import ConfigError, RemoteProtocolError
from voiceguard.observe.trace import (
    Trace,
    TraceError,
    _decision_record,
    bridge_config_from_mapping,
    load_trace,
)
from voiceguard.protocol import parse_realtime_event, parse_twilio_message

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


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TraceDecision:
    """One decision of a trace or of its replay.

    Attributes:
        t: The monotonic time of the input that led to it, in the trace's clock.
        guard: ``calibration_gate``, ``cancel_arbiter`` or ``response_create_guard``.
        action: The :class:`~voiceguard.Action` value.
        verdict: The :class:`~voiceguard.Verdict` value.
        reason: The :class:`~voiceguard.Reason` value.
        response_id: The response it is about, if any.
        item_id: The conversation item it is about, if any.
        detail: The guard's explanation.
    """

    t: float
    guard: str
    action: str
    verdict: str
    reason: str
    response_id: str | None = None
    item_id: str | None = None
    detail: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TraceDecision:
        """From a trace's ``decision`` record."""
        return cls(
            t=float(record["t"]),
            guard=str(record["guard"]),
            action=str(record["action"]),
            verdict=str(record["verdict"]),
            reason=str(record["reason"]),
            response_id=record.get("response_id"),
            item_id=record.get("item_id"),
            detail=str(record.get("detail") or ""),
        )

    @property
    def key(self) -> tuple[object, ...]:
        """What must match for two decisions to be the same (the detail text may differ)."""
        return (
            round(self.t, 6),
            self.action,
            self.verdict,
            self.reason,
            self.response_id,
            self.item_id,
        )

    def describe(self, t0: float = 0.0) -> str:
        """One line: time, guard, action, verdict, reason, ids and detail."""
        parts = [
            f"{self.t - t0:8.3f} s",
            f"{self.guard:<21}",
            f"{self.action:<8}",
            f"{self.verdict:<8}",
            self.reason,
        ]
        if self.response_id:
            parts.append(f"response={self.response_id}")
        if self.item_id:
            parts.append(f"item={self.item_id}")
        if self.detail:
            parts.append(f"({self.detail})")
        return "  ".join(parts)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionDifference:
    """A place where the replay decided differently from the recording.

    Attributes:
        recorded: The recorded decision, or None if the replay made an extra one.
        replayed: The replayed decision, or None if the replay did not make the recorded one.
    """

    recorded: TraceDecision | None
    replayed: TraceDecision | None

    @property
    def t(self) -> float:
        """When (the trace's clock)."""
        either = self.recorded if self.recorded is not None else self.replayed
        assert either is not None
        return either.t


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """What a replay decided, next to what was recorded.

    Attributes:
        trace: The trace replayed.
        config: The configuration the replay ran with.
        config_changed: True if it differs from the recorded one.
        recorded: The recorded decisions.
        replayed: The replay's decisions.
        differences: Where they differ, in time order (empty: identical).
        sent: The control messages the replay sent (``(t, type)``; audio frames and marks left
            out).
        gate: The replayed calibration gate's final estimates (noise floor, echo delay and
            return loss).
    """

    trace: Trace
    config: BridgeConfig
    config_changed: bool
    recorded: Sequence[TraceDecision]
    replayed: Sequence[TraceDecision]
    differences: Sequence[DecisionDifference]
    sent: Sequence[tuple[float, str]]
    gate: Mapping[str, float | None]

    @property
    def identical(self) -> bool:
        """True if every replayed decision matches the recorded one."""
        return not self.differences

    def render(self) -> str:
        """The replay as text: every decision with its reason, differences flagged ``!``."""
        t0 = _start_time(self.trace)
        differing_recorded = {id(d.recorded) for d in self.differences if d.recorded is not None}
        differing_replayed = {id(d.replayed) for d in self.differences if d.replayed is not None}
        lines = [
            f"trace {self.trace.path} (call {self.trace.call_sid or '?'}): "
            f"{len(self.recorded)} decisions recorded, {len(self.replayed)} replayed"
            + (" with a changed configuration" if self.config_changed else ""),
        ]
        for decision in self.replayed:
            flag = "!" if id(decision) in differing_replayed else " "
            lines.append(f"{flag} {decision.describe(t0)}")
        if self.differences:
            lines.append("")
            lines.append(f"{len(self.differences)} difference(s) from the recording:")
            for diff in self.differences:
                if diff.recorded is not None and id(diff.recorded) in differing_recorded:
                    lines.append(f"  recorded: {diff.recorded.describe(t0)}")
                else:
                    lines.append(f"  recorded: {'':>8}   (nothing)")
                if diff.replayed is not None:
                    lines.append(f"  replayed: {diff.replayed.describe(t0)}")
                else:
                    lines.append(f"  replayed: {'':>8}   (nothing)")
            if not self.config_changed:
                lines.append("the replay is not deterministic: please report this trace")
        else:
            lines.append("")
            lines.append("replayed decisions are identical to the recorded ones")
        return "\n".join(lines)


def _start_time(trace: Trace) -> float:
    return float(trace.records[0]["t"]) if trace.records else 0.0


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
    if kind == "tick":
        return core.on_tick(t)
    if kind == "close":
        return core.close(t)
    if kind == "timer":
        name = record["name"]
        if name == "watchdog":
            return core.on_watchdog(t)
        if name == "idle_prompt":
            number = record.get("number")
            if not isinstance(number, int):
                raise TraceError(f"{where}: timer record: idle_prompt without a 'number'")
            return core.on_idle_prompt(number, t)
        if name == "idle_hangup":
            return core.on_idle_hangup(t)
        if name == "max_duration":
            return core.on_max_duration(t)
        if name == "max_duration_hard":
            return core.on_max_duration_hard(t)
        if name == "hangup_fallback":
            return core.on_hangup_fallback(t)
        raise TraceError(f"{where}: timer record: unknown timer {name!r}")
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
        replayed.append(TraceDecision.from_record(_decision_record(decision, now[0])))

    core = BridgeCore(config=used, on_decision=sink)
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


# ============================================================================================
# The timeline

_WIDTH: Final = 1500
_LEFT: Final = 190
_RIGHT: Final = 30
_TOP: Final = 86
_FONT: Final = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
_VERDICT_COLOURS: Final = {"ALLOW": "#2e7d32", "SUPPRESS": "#c62828", "DEFER": "#f9a825"}
_BOT: Final = "#1565c0"
_HEARD: Final = "#64b5f6"
_FLUSHED: Final = "#b0bec5"
_CALLER: Final = "#6a1b9a"
_ECHO: Final = "#ef6c00"
_FLOOR_DB: Final = -80.0
_ACTION_LABELS: Final = {
    "session.update": "session",
    "response.create": "create",
    "response.cancel": "cancel",
    "conversation.item.truncate": "truncate",
    "conversation.item.delete": "delete",
    "clear": "clear",
}
_GUARD_LANES: Final = (
    ("calibration_gate", "Calibration gate"),
    ("cancel_arbiter", "Cancel arbiter"),
    ("response_create_guard", "Create guard"),
)


def _audio_of(payload: object) -> tuple[int, float] | None:
    """(bytes, dBFS) of a recorded payload: a base64 string, or a summary object."""
    if isinstance(payload, Mapping):
        size = payload.get("bytes")
        db = payload.get("dbfs")
        if isinstance(size, int) and size > 0:
            return size, float(db) if isinstance(db, (int, float)) else SILENCE_DBFS
        return None
    if isinstance(payload, str):
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
        return (len(audio), ulaw_energy_dbfs(audio)) if audio else None
    return None


@dataclass(slots=True)
class _Lane:
    key: str
    title: str
    height: float
    y: float = 0.0


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_step(duration: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 20:
            return float(step)
    return 1200.0


def render_timeline(trace: Trace, result: ReplayResult | None = None) -> str:
    """Draw *trace* as a self-contained SVG document (no scripts, no external resources).

    Args:
        trace: The trace.
        result: A replay of it: its decisions are drawn, those that differ from the recording
            ringed, and its gate estimates give the echo estimate. None draws the recorded ones.

    Returns:
        The SVG text.

    .. versionadded:: 0.1.0
    """
    records = trace.records
    t0 = _start_time(trace)
    t_end = max((float(r["t"]) for r in records), default=t0)
    duration = max(t_end - t0, 0.5)
    plot_w = _WIDTH - _LEFT - _RIGHT

    def x(t: float) -> float:
        return _LEFT + (t - t0) / duration * plot_w

    lanes = [
        _Lane("sent", "Bot audio sent", 46),
        _Lane("heard", "Bot audio heard", 46),
        _Lane("energy", "Caller energy (dBFS)", 150),
        _Lane("vad", "Server VAD", 30),
        _Lane("responses", "Responses", 30),
        *(_Lane(key, title, 30) for key, title in _GUARD_LANES),
        _Lane("actions", "Actions sent", 58),
        _Lane("timers", "Timers", 30),
    ]
    y = float(_TOP)
    for lane in lanes:
        lane.y = y
        y += lane.height + 10
    by_key = {lane.key: lane for lane in lanes}
    height = y + 40
    out: list[str] = []
    add = out.append

    # ---- data
    chunks: list[tuple[float, float, float]] = []  # sent: t, seconds, dBFS
    pending_chunk: tuple[float, float, float] | None = None
    mark_chunk: dict[str, tuple[float, float, float]] = {}
    clears: list[float] = []
    heard: list[tuple[float, float, float, bool]] = []  # t_end, seconds, dBFS, flushed
    caller: list[tuple[float, float]] = []
    vad: list[tuple[str, float, Mapping[str, Any]]] = []
    responses: dict[str, list[Any]] = {}
    actions: list[tuple[float, str, str]] = []
    timers: list[tuple[float, str]] = []
    bad: list[tuple[float, str]] = []
    gate: Mapping[str, Any] = {}
    ended_by = ""
    for record in records:
        kind = record["k"]
        t = float(record["t"])
        msg = record.get("msg") if isinstance(record.get("msg"), Mapping) else {}
        assert isinstance(msg, Mapping)
        if kind == "out" and record.get("peer") == "phone":
            event = msg.get("event")
            if event == "media":
                audio = _audio_of((msg.get("media") or {}).get("payload"))
                if audio is not None:
                    pending_chunk = (t, audio[0] / 8000.0, audio[1])
                    chunks.append(pending_chunk)
            elif event == "mark" and pending_chunk is not None:
                name = (msg.get("mark") or {}).get("name")
                if isinstance(name, str):
                    mark_chunk[name] = pending_chunk
            elif event == "clear":
                clears.append(t)
                actions.append((t, "clear", "Twilio clear: the phone's buffer is flushed"))
        elif kind == "out" and record.get("peer") == "model":
            what = msg.get("type")
            if isinstance(what, str) and what in _ACTION_LABELS:
                label = _ACTION_LABELS[what]
                if what == "conversation.item.truncate":
                    label = f"truncate {msg.get('audio_end_ms')} ms"
                details = ", ".join(
                    f"{k}={v}" for k, v in msg.items() if k in ("response_id", "item_id")
                )
                actions.append((t, label, f"{what} {details}".strip()))
        elif kind == "out" and record.get("peer") == "runtime":
            if record.get("action") == "hang_up":
                actions.append((t, "hang up", f"hang up: {record.get('reason')}"))
        elif kind == "in" and record.get("peer") == "phone":
            event = msg.get("event")
            if event == "media":
                audio = _audio_of((msg.get("media") or {}).get("payload"))
                if audio is not None:
                    caller.append((t, audio[1]))
            elif event == "mark":
                name = (msg.get("mark") or {}).get("name")
                chunk = mark_chunk.pop(name, None) if isinstance(name, str) else None
                if chunk is not None:
                    flushed = any(chunk[0] <= c <= t for c in clears)
                    heard.append((t, chunk[1], chunk[2], flushed))
        elif kind == "in" and record.get("peer") == "model":
            what = msg.get("type")
            if what in (
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
            ):
                vad.append((str(what).rsplit(".", 1)[1], t, msg))
            elif what in ("response.created", "response.done"):
                response = msg.get("response") or {}
                rid = str(response.get("id"))
                entry = responses.setdefault(rid, [t, None, ""])
                if what == "response.done":
                    entry[1] = t
                    entry[2] = str(response.get("status") or "")
            elif what == "error":
                error = msg.get("error") or {}
                bad.append((t, f"model error {error.get('code') or error.get('type')}"))
        elif kind == "timer":
            timers.append((t, str(record.get("name"))))
        elif kind == "bad":
            bad.append((t, f"malformed {record.get('peer')} message: {record.get('problem')}"))
        elif kind == "end":
            gate = record.get("gate") or {}
            ended_by = str(record.get("ended_by") or "")
    if result is not None:
        gate = result.gate
        decisions = list(result.replayed)
        differing = {id(d.replayed) for d in result.differences if d.replayed is not None}
        missing = [d.recorded for d in result.differences if d.replayed is None and d.recorded]
    else:
        decisions = [TraceDecision.from_record(r) for r in trace.decisions()]
        differing = set()
        missing = []

    # ---- frame
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {_WIDTH} {height:.0f}" style="{_FONT};background:#fff">'
    )
    add(f'<rect x="0" y="0" width="{_WIDTH}" height="{height:.0f}" fill="#ffffff"/>')
    title = f"Call {trace.call_sid or '?'}"
    sub = f"{duration:.1f} s" + (f", ended by {ended_by}" if ended_by else "")
    if result is not None:
        sub += (
            f"; replay: {len(result.differences)} difference(s) (decisions as replayed, ringed "
            "where they differ; audio, speech and actions as recorded)"
            if result.differences
            else "; replay: identical decisions"
        )
    add(
        f'<text x="{_LEFT}" y="26" font-size="18" font-weight="600" fill="#212121">'
        f"{_esc(title)}</text>"
    )
    add(f'<text x="{_LEFT}" y="46" font-size="12.5" fill="#616161">{_esc(sub)}</text>')
    legend = [
        ("rect", _BOT, "bot audio"),
        ("rect", _HEARD, "heard"),
        ("rect", _FLUSHED, "flushed by clear"),
        ("line", _CALLER, "caller energy"),
        ("dash", _ECHO, "echo estimate"),
        ("dot", "#757575", "noise floor"),
        ("circle", _VERDICT_COLOURS["ALLOW"], "allowed"),
        ("circle", _VERDICT_COLOURS["SUPPRESS"], "suppressed"),
        ("circle", _VERDICT_COLOURS["DEFER"], "deferred"),
        ("ring", "#000", "differs from recording"),
    ]
    lx = float(_LEFT)
    for shape, colour, label in legend:
        ly = 66
        if shape == "rect":
            add(f'<rect x="{lx}" y="{ly - 9}" width="14" height="10" fill="{colour}" rx="2"/>')
        elif shape in ("line", "dash", "dot"):
            dash = {"line": "", "dash": "5 3", "dot": "2 3"}[shape]
            add(
                f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 14}" y2="{ly - 4}" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="{dash}"/>'
            )
        elif shape == "circle":
            add(f'<circle cx="{lx + 7}" cy="{ly - 4}" r="5" fill="{colour}"/>')
        else:
            add(
                f'<circle cx="{lx + 7}" cy="{ly - 4}" r="6" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        add(f'<text x="{lx + 19}" y="{ly}" font-size="12" fill="#424242">{_esc(label)}</text>')
        lx += 26 + 6.6 * len(label) + 10

    # lane backgrounds, titles, grid
    for i, lane in enumerate(lanes):
        fill = "#fafafa" if i % 2 == 0 else "#f3f5f7"
        add(
            f'<rect x="{_LEFT}" y="{lane.y}" width="{plot_w}" height="{lane.height}" '
            f'fill="{fill}" stroke="#e0e0e0"/>'
        )
        add(
            f'<text x="{_LEFT - 10}" y="{lane.y + lane.height / 2 + 4}" font-size="12.5" '
            f'text-anchor="end" fill="#37474f">{_esc(lane.title)}</text>'
        )
    step = _nice_step(duration)
    axis_y = lanes[-1].y + lanes[-1].height + 6
    tick = 0.0
    while tick <= duration + 1e-9:
        gx = _LEFT + tick / duration * plot_w
        add(
            f'<line x1="{gx:.1f}" y1="{_TOP}" x2="{gx:.1f}" y2="{axis_y}" stroke="#000" '
            'stroke-opacity="0.07"/>'
        )
        add(
            f'<text x="{gx:.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle" '
            f'fill="#616161">{tick:g} s</text>'
        )
        tick += step

    # bot audio sent and heard
    for key, items in (("sent", [(t, s, d, False) for t, s, d in chunks]), ("heard", heard)):
        lane = by_key[key]
        base = lane.y + lane.height - 4
        for t, seconds, db, flushed in items:
            level = max(0.0, min(1.0, (db - _FLOOR_DB) / -_FLOOR_DB))
            bar_h = 3 + level * (lane.height - 10)
            start = t if key == "sent" else t - seconds
            bx = x(start)
            bw = max(1.0, x(start + seconds) - bx)
            colour = _BOT if key == "sent" else (_FLUSHED if flushed else _HEARD)
            what = "sent" if key == "sent" else ("flushed" if flushed else "heard")
            add(
                f'<rect x="{bx:.2f}" y="{base - bar_h:.2f}" width="{bw:.2f}" height="{bar_h:.2f}" '
                f'fill="{colour}"><title>bot audio {what} at {start - t0:.3f} s: '
                f"{seconds * 1000:.0f} ms, {db:.1f} dBFS</title></rect>"
            )

    # caller energy, echo estimate, noise floor
    lane = by_key["energy"]

    def ey(db: float) -> float:
        level = max(0.0, min(1.0, (db - _FLOOR_DB) / -_FLOOR_DB))
        return lane.y + lane.height - 4 - level * (lane.height - 8)

    for db in (-60, -40, -20):
        add(
            f'<line x1="{_LEFT}" y1="{ey(db):.1f}" x2="{_LEFT + plot_w}" y2="{ey(db):.1f}" '
            'stroke="#000" stroke-opacity="0.06"/>'
        )
        add(
            f'<text x="{_LEFT + 4}" y="{ey(db) - 2:.1f}" font-size="9.5" fill="#9e9e9e">'
            f"{db} dBFS</text>"
        )
    if caller:
        points = " ".join(f"{x(t + 0.01):.1f},{ey(db):.1f}" for t, db in caller)
        first = f"{x(caller[0][0]):.1f},{ey(_FLOOR_DB):.1f}"
        last = f"{x(caller[-1][0] + 0.02):.1f},{ey(_FLOOR_DB):.1f}"
        add(f'<polygon points="{first} {points} {last}" fill="{_CALLER}" fill-opacity="0.16"/>')
        add(
            f'<polyline points="{points}" fill="none" stroke="{_CALLER}" stroke-width="1.2">'
            "<title>caller energy per 20 ms frame</title></polyline>"
        )
    delay = gate.get("echo_delay_ms")
    erl = gate.get("echo_return_loss_db")
    if isinstance(delay, (int, float)) and isinstance(erl, (int, float)) and chunks:
        segments = []
        previous_end = -1.0
        for t, seconds, db in chunks:
            start = t + delay / 1000.0
            joined = abs(start - previous_end) < 0.03
            segments.append(
                f"{'V' if joined else 'M' + f'{x(start):.1f},'}{ey(db - erl):.1f} "
                f"H{x(start + seconds):.1f}"
            )
            previous_end = start + seconds
        add(
            f'<path d="{" ".join(segments)}" fill="none" stroke="{_ECHO}" stroke-width="1.6" '
            f'stroke-dasharray="5 3"><title>echo estimate: bot audio {delay:.0f} ms later, '
            f"{erl:.1f} dB quieter (the gate's estimate, correlation "
            f"{float(gate.get('echo_confidence') or 0.0):.2f})</title></path>"
        )
    floor = gate.get("noise_floor_dbfs")
    if isinstance(floor, (int, float)):
        add(
            f'<line x1="{_LEFT}" y1="{ey(floor):.1f}" x2="{_LEFT + plot_w}" y2="{ey(floor):.1f}" '
            f'stroke="#757575" stroke-width="1.2" stroke-dasharray="2 3">'
            f"<title>noise floor {floor:.1f} dBFS</title></line>"
        )

    # server VAD: speech segments
    lane = by_key["vad"]
    open_at: float | None = None
    for what, t, msg in vad:
        if what == "speech_started":
            open_at = t
        elif what == "speech_stopped" and open_at is not None:
            add(
                f'<rect x="{x(open_at):.1f}" y="{lane.y + 7}" '
                f'width="{max(2, x(t) - x(open_at)):.1f}" '
                f'height="{lane.height - 14}" rx="3" fill="{_CALLER}" fill-opacity="0.55">'
                f"<title>speech {open_at - t0:.3f}-{t - t0:.3f} s (item {_esc(msg.get('item_id'))})"
                "</title></rect>"
            )
            open_at = None
        elif what == "committed":
            add(
                f'<path d="M{x(t):.1f},{lane.y + 3} l4,-0 l-4,6 l-4,-6 z" fill="#4a148c">'
                f"<title>turn committed at {t - t0:.3f} s</title></path>"
            )
    if open_at is not None:
        add(
            f'<rect x="{x(open_at):.1f}" y="{lane.y + 7}" '
            f'width="{max(2, x(t_end) - x(open_at)):.1f}" '
            f'height="{lane.height - 14}" rx="3" fill="{_CALLER}" fill-opacity="0.3"/>'
        )

    # responses
    lane = by_key["responses"]
    for rid, (start, stop, status) in responses.items():
        stop_t = stop if stop is not None else t_end
        colour = "#90a4ae" if status == "cancelled" else "#1e88e5"
        add(
            f'<rect x="{x(start):.1f}" y="{lane.y + 7}" width="{max(2, x(stop_t) - x(start)):.1f}" '
            f'height="{lane.height - 14}" rx="3" fill="{colour}" fill-opacity="0.75">'
            f"<title>response {_esc(rid)}: {start - t0:.3f}-{stop_t - t0:.3f} s "
            f"{_esc(status or 'not done')}</title></rect>"
        )

    # decisions, one lane per guard
    label_end: dict[str, float] = {}
    for decision in [*decisions, *missing]:
        guard_lane = by_key.get(decision.guard)
        if guard_lane is None:
            continue
        cx = x(decision.t)
        cy = guard_lane.y + guard_lane.height / 2
        colour = _VERDICT_COLOURS.get(decision.verdict, "#757575")
        is_missing = decision in missing
        tip = _esc(
            ("recorded, not replayed: " if is_missing else "")
            + decision.describe(t0).replace("  ", " ")
        )
        if is_missing:
            add(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="none" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="2 2"><title>{tip}</title></circle>'
            )
        else:
            add(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" fill="{colour}" stroke="#fff" '
                f'stroke-width="1"><title>{tip}</title></circle>'
            )
        if id(decision) in differing or is_missing:
            add(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="none" stroke="#000" '
                f'stroke-width="2"><title>{tip}</title></circle>'
            )
        if decision.verdict != "ALLOW" and not is_missing:
            below = cx + 8 < label_end.get(decision.guard, -1e9)
            label_end[decision.guard] = -1e9 if below else cx + 8 + 6.2 * len(decision.reason)
            add(
                f'<text x="{cx + 8:.1f}" y="{cy + 12 if below else cy - 6:.1f}" font-size="9.5" '
                f'fill="{colour}">{_esc(decision.reason)}</text>'
            )

    # actions sent
    lane = by_key["actions"]
    row_end = [-1e9, -1e9, -1e9]
    for t, label, tip in actions:
        ax = x(t)
        row = next((i for i, end in enumerate(row_end) if ax > end + 4), 0)
        row_end[row] = ax + 6.2 * len(label)
        ty = lane.y + 14 + row * 16
        colour = "#c62828" if label in ("clear", "cancel", "hang up") else "#37474f"
        if label.startswith("truncate"):
            colour = "#ad1457"
        add(
            f'<line x1="{ax:.1f}" y1="{lane.y + 2}" x2="{ax:.1f}" y2="{lane.y + lane.height - 2}" '
            f'stroke="{colour}" stroke-width="1.5">'
            f"<title>{_esc(tip)} at {t - t0:.3f} s</title></line>"
        )
        add(
            f'<text x="{ax + 3:.1f}" y="{ty}" font-size="10.5" fill="{colour}">{_esc(label)}'
            f"<title>{_esc(tip)}</title></text>"
        )
    for t, tip in bad:
        add(
            f'<text x="{x(t):.1f}" y="{lane.y + lane.height - 3}" font-size="12" fill="#b71c1c" '
            f'text-anchor="middle">⚠<title>{_esc(tip)}</title></text>'
        )

    # timers
    lane = by_key["timers"]
    for t, name in timers:
        add(
            f'<path d="M{x(t):.1f},{lane.y + 6} l6,9 l-6,9 l-6,-9 z" fill="#6d4c41">'
            f"<title>timer {_esc(name)} fired at {t - t0:.3f} s</title></path>"
        )
        add(
            f'<text x="{x(t) + 8:.1f}" y="{lane.y + 19}" font-size="10" fill="#6d4c41">'
            f"{_esc(name)}</text>"
        )
    add(
        f'<text x="{_LEFT + plot_w}" y="{axis_y + 30}" font-size="11" text-anchor="end" '
        'fill="#9e9e9e">seconds since the stream started</text>'
    )
    add("</svg>")
    return "\n".join(out)


def timeline_html(trace: Trace, result: ReplayResult | None = None) -> str:
    """The timeline in a self-contained HTML page, with the decisions as a table below it.

    .. versionadded:: 0.1.0
    """
    svg = render_timeline(trace, result)
    t0 = _start_time(trace)
    decisions = (
        result.replayed
        if result is not None
        else [TraceDecision.from_record(r) for r in trace.decisions()]
    )
    differing = (
        {id(d.replayed) for d in result.differences if d.replayed is not None}
        if result is not None
        else set()
    )
    rows = []
    for d in decisions:
        colour = _VERDICT_COLOURS.get(d.verdict, "#757575")
        mark = "≠" if id(d) in differing else ""
        rows.append(
            f"<tr><td class=n>{d.t - t0:.3f}</td><td>{_esc(d.guard)}</td><td>{_esc(d.action)}</td>"
            f'<td style="color:{colour};font-weight:600">{_esc(d.verdict)}</td>'
            f"<td>{_esc(d.reason)}</td><td>{_esc(d.response_id or d.item_id or '')}</td>"
            f"<td>{_esc(d.detail)}</td><td>{mark}</td></tr>"
        )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>voiceguard timeline: {_esc(trace.call_sid or trace.path.name)}</title>"
        "<style>body{margin:16px;" + _FONT + ";color:#212121}"
        "table{border-collapse:collapse;font-size:13px;margin-top:18px}"
        "td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "th{background:#f5f5f5}</style></head><body>\n"
        f"{svg}\n<table><tr><th>s</th><th>guard</th><th>action</th><th>verdict</th>"
        "<th>reason</th><th>id</th><th>detail</th><th></th></tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def screenshot_html(
    page: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    timeout: float = 60.0,
) -> None:
    """Photograph an HTML file with headless Chromium.

    Raises:
        RuntimeError: If no Chromium is installed, or it fails (with its output).
    """
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(
            "drawing a PNG needs Chromium (Debian/Ubuntu: apt-get install chromium); "
            "or write the timeline as .svg or .html, which need nothing"
        )
    with tempfile.TemporaryDirectory(prefix="voiceguard-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={Path(png).resolve()}",
            Path(page).resolve().as_uri(),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"Chromium could not draw the PNG: {exc}") from None
    if done.returncode != 0 or not Path(png).exists():
        raise RuntimeError(
            f"Chromium could not draw the PNG (exit {done.returncode}): {done.stderr[-500:]}"
        )


def write_timeline(
    path: str | os.PathLike[str], trace: Trace, result: ReplayResult | None = None
) -> Path:
    """Write the timeline to *path*: ``.svg``, ``.html`` or ``.png`` (by its suffix).

    Returns:
        The path written.

    Raises:
        ValueError: For another suffix.
        RuntimeError: For ``.png`` without Chromium (the message says what to install).

    .. versionadded:: 0.1.0
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".svg":
        target.write_text(render_timeline(trace, result), encoding="utf-8")
    elif suffix in (".html", ".htm"):
        target.write_text(timeline_html(trace, result), encoding="utf-8")
    elif suffix == ".png":
        svg = render_timeline(trace, result)
        height = int(float(svg.split('height="', 1)[1].split('"', 1)[0])) + 2
        page = (
            "<!DOCTYPE html><html><head><meta charset=utf-8><style>html,body{margin:0;"
            f"background:#fff}}</style></head><body>{svg}</body></html>"
        )
        with tempfile.TemporaryDirectory(prefix="voiceguard-timeline-") as tmp:
            html_path = Path(tmp) / "timeline.html"
            html_path.write_text(page, encoding="utf-8")
            screenshot_html(html_path, target, width=_WIDTH, height=height)
    else:
        raise ValueError(
            f"timeline file {str(target)!r}: unknown suffix {suffix or '(none)'!r}; "
            "use .html, .svg or .png"
        )
    return target


def _recorded_decisions_text(trace: Trace) -> str:
    """The recorded decisions of *trace* as text (for a trace that cannot be replayed)."""
    t0 = _start_time(trace)
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
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{file}: cannot read the configuration: {exc}") from None
    except ValueError as exc:
        raise TraceError(f"{file}: not JSON: {exc}") from None
    return bridge_config_from_mapping(data, base=base)


# ============================================================================================
# `voiceguard replay`


def _replay_command(args: argparse.Namespace) -> int:
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
            print(f"voiceguard replay: --timeline: {exc}", file=sys.stderr)
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
