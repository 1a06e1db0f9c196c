"""What a call trace says, lane by lane, for the timeline (see ``render_timeline``).

:func:`read_timeline` goes through a trace's records once and collects what each lane of the
timeline draws: the bot's audio as sent and as heard (or flushed by a ``clear``), the caller's
energy, the server VAD, the responses, the actions sent, the timers, the errors, the gate's final
estimates, and the decisions (recorded, or those of a replay).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, final

from voiceguard.audio import SILENCE_DBFS, ulaw_energy_dbfs
from voiceguard.observe._decisions import ReplayResult, TraceDecision, start_time
from voiceguard.observe.trace import Trace

__all__ = ("TimelineData", "read_timeline")

_ACTION_LABELS: Final = {
    "session.update": "session",
    "response.create": "create",
    "response.cancel": "cancel",
    "conversation.item.truncate": "truncate",
    "conversation.item.delete": "delete",
    "clear": "clear",
}
_VAD_EVENTS: Final = (
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
)

#: A chunk of bot audio sent to the phone: (t, seconds, dBFS).
Chunk = tuple[float, float, float]


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


@final
@dataclass(slots=True, kw_only=True)
class TimelineData:
    """What each lane of a trace's timeline draws.

    Attributes:
        t0: The trace's first time (the axis starts there).
        t_end: The trace's last time.
        chunks: Bot audio sent: ``(t, seconds, dBFS)``.
        heard: Bot audio heard: ``(t_end, seconds, dBFS, flushed)``, at its echoed mark.
        caller: Caller energy: ``(t, dBFS)`` per frame.
        vad: Server VAD events: ``(what, t, message)``.
        responses: Per response id: ``[created at, done at or None, status]``.
        actions: Actions sent: ``(t, label, tip)``.
        timers: Timers that fired: ``(t, name)``.
        bad: Errors and malformed messages: ``(t, tip)``.
        gate: The gate's final estimates (noise floor, echo delay and loss).
        ended_by: What ended the call, if recorded.
        decisions: The decisions drawn.
        differing: The ids of the drawn decisions that differ from the recording.
        missing: Recorded decisions the replay did not make.
    """

    t0: float
    t_end: float
    chunks: list[Chunk] = field(default_factory=list)
    heard: list[tuple[float, float, float, bool]] = field(default_factory=list)
    caller: list[tuple[float, float]] = field(default_factory=list)
    vad: list[tuple[str, float, Mapping[str, Any]]] = field(default_factory=list)
    responses: dict[str, list[Any]] = field(default_factory=dict)
    actions: list[tuple[float, str, str]] = field(default_factory=list)
    timers: list[tuple[float, str]] = field(default_factory=list)
    bad: list[tuple[float, str]] = field(default_factory=list)
    gate: Mapping[str, Any] = field(default_factory=dict)
    ended_by: str = ""
    decisions: list[TraceDecision] = field(default_factory=list)
    differing: set[int] = field(default_factory=set)
    missing: list[TraceDecision] = field(default_factory=list)


def read_timeline(trace: Trace, result: ReplayResult | None = None) -> TimelineData:
    """Collect what the timeline of *trace* draws (the decisions of *result*, if given)."""
    records = trace.records
    t0 = start_time(trace)
    data = TimelineData(t0=t0, t_end=max((float(r["t"]) for r in records), default=t0))
    reader = _Reader(data)
    for record in records:
        reader.read(record)
    if result is not None:
        data.gate = result.gate
        data.decisions = list(result.replayed)
        data.differing = {id(d.replayed) for d in result.differences if d.replayed is not None}
        data.missing = [d.recorded for d in result.differences if d.replayed is None and d.recorded]
    else:
        data.decisions = [TraceDecision.from_record(r) for r in trace.decisions()]
    return data


@final
class _Reader:
    """Reads the records in order: bot audio is matched to the marks the phone echoes."""

    __slots__ = ("_clears", "_data", "_mark_chunk", "_pending_chunk")

    def __init__(self, data: TimelineData) -> None:
        self._data = data
        self._pending_chunk: Chunk | None = None
        self._mark_chunk: dict[str, Chunk] = {}
        self._clears: list[float] = []

    def read(self, record: Mapping[str, Any]) -> None:
        data = self._data
        kind = record["k"]
        t = float(record["t"])
        msg = record.get("msg") if isinstance(record.get("msg"), Mapping) else {}
        assert isinstance(msg, Mapping)
        peer = record.get("peer")
        if kind == "out" and peer == "phone":
            self._to_phone(t, msg)
        elif kind == "out" and peer == "model":
            self._to_model(t, msg)
        elif kind == "out" and peer == "runtime":
            if record.get("action") == "hang_up":
                data.actions.append((t, "hang up", f"hang up: {record.get('reason')}"))
        elif kind == "in" and peer == "phone":
            self._from_phone(t, msg)
        elif kind == "in" and peer == "model":
            self._from_model(t, msg)
        elif kind == "timer":
            data.timers.append((t, str(record.get("name"))))
        elif kind == "bad":
            data.bad.append((t, f"malformed {peer} message: {record.get('problem')}"))
        elif kind == "end":
            data.gate = record.get("gate") or {}
            data.ended_by = str(record.get("ended_by") or "")

    def _to_phone(self, t: float, msg: Mapping[str, Any]) -> None:
        event = msg.get("event")
        if event == "media":
            audio = _audio_of((msg.get("media") or {}).get("payload"))
            if audio is not None:
                self._pending_chunk = (t, audio[0] / 8000.0, audio[1])
                self._data.chunks.append(self._pending_chunk)
        elif event == "mark" and self._pending_chunk is not None:
            name = (msg.get("mark") or {}).get("name")
            if isinstance(name, str):
                self._mark_chunk[name] = self._pending_chunk
        elif event == "clear":
            self._clears.append(t)
            self._data.actions.append((t, "clear", "Twilio clear: the phone's buffer is flushed"))

    def _to_model(self, t: float, msg: Mapping[str, Any]) -> None:
        what = msg.get("type")
        if isinstance(what, str) and what in _ACTION_LABELS:
            label = _ACTION_LABELS[what]
            if what == "conversation.item.truncate":
                label = f"truncate {msg.get('audio_end_ms')} ms"
            details = ", ".join(
                f"{k}={v}" for k, v in msg.items() if k in ("response_id", "item_id")
            )
            self._data.actions.append((t, label, f"{what} {details}".strip()))

    def _from_phone(self, t: float, msg: Mapping[str, Any]) -> None:
        event = msg.get("event")
        if event == "media":
            audio = _audio_of((msg.get("media") or {}).get("payload"))
            if audio is not None:
                self._data.caller.append((t, audio[1]))
        elif event == "mark":
            name = (msg.get("mark") or {}).get("name")
            chunk = self._mark_chunk.pop(name, None) if isinstance(name, str) else None
            if chunk is not None:
                flushed = any(chunk[0] <= c <= t for c in self._clears)
                self._data.heard.append((t, chunk[1], chunk[2], flushed))

    def _from_model(self, t: float, msg: Mapping[str, Any]) -> None:
        data = self._data
        what = msg.get("type")
        if what in _VAD_EVENTS:
            data.vad.append((str(what).rsplit(".", 1)[1], t, msg))
        elif what in ("response.created", "response.done"):
            response = msg.get("response") or {}
            rid = str(response.get("id"))
            entry = data.responses.setdefault(rid, [t, None, ""])
            if what == "response.done":
                entry[1] = t
                entry[2] = str(response.get("status") or "")
        elif what == "error":
            error = msg.get("error") or {}
            data.bad.append((t, f"model error {error.get('code') or error.get('type')}"))
