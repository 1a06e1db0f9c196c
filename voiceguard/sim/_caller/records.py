"""What happened in a simulated call, from the caller's side."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, final

__all__ = ("CallRecord", "HeardAudio", "MarkEchoed", "ReceivedMessage")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMessage:
    """A message the caller received from the bot (audio replaced by its length).

    Attributes:
        time: Seconds since ``start``.
        event: ``media``, ``mark``, ``clear``, or ``invalid`` for a message Twilio would refuse.
        detail: The mark's name, the number of audio bytes, or what was wrong.
    """

    time: float
    event: str
    detail: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MarkEchoed:
    """A mark the caller (as Twilio) echoed back.

    Attributes:
        time: Seconds since ``start``.
        name: The mark's name.
        cleared: True if it was echoed because of a ``clear`` (its audio did not play).
    """

    time: float
    name: str
    cleared: bool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HeardAudio:
    """20 ms of the bot's audio that the caller heard.

    Attributes:
        time: Seconds since ``start`` when it started playing.
        audio: The mu-law audio (shorter than a frame when the buffer ran dry).
    """

    time: float
    audio: bytes = field(repr=False)


@final
class CallRecord:
    """What happened in one simulated call, from the caller's side; times are seconds since
    ``start``.

    Attributes:
        call_sid: The call's SID.
        stream_sid: The stream's SID.
        received: Every message received from the bot, in order.
        sent: ``(time, event)`` of every message sent to the bot (media included).
        marks: Every mark echoed.
        heard: The bot's audio as played, frame by frame.
        clears: Times of each ``clear`` received.
        protocol_errors: Messages Twilio would have refused, with what was wrong.
        ended_by: ``"caller"`` (hung up), ``"bot"`` (closed the stream), or None while running.
        ended_at: When the call ended, or None while running.
        spoke: ``(start, end)`` of each utterance of the caller.
        started_at: ``anyio.current_time()`` at ``start`` (time 0 of this record), to compare
            with the model simulator's times.
        skipped: The script's ``after_heard`` steps that never ran because the caller never
            heard that much of the bot, each in words (``"Speak(after_heard=3.0) never spoke:
            only 2.0 s of the bot was heard before the call ended at 7.0 s"``). Empty when the
            whole script ran (steps timed with ``at`` after the end are not listed: the call
            simply ended first).

    .. versionchanged:: 0.2.0
        :attr:`skipped` added.
    """

    __slots__ = (
        "call_sid",
        "clears",
        "ended_at",
        "ended_by",
        "heard",
        "marks",
        "protocol_errors",
        "received",
        "sent",
        "skipped",
        "spoke",
        "started_at",
        "stream_sid",
    )

    def __init__(self, *, call_sid: str, stream_sid: str) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.received: list[ReceivedMessage] = []
        self.sent: list[tuple[float, str]] = []
        self.marks: list[MarkEchoed] = []
        self.heard: list[HeardAudio] = []
        self.clears: list[float] = []
        self.protocol_errors: list[str] = []
        self.ended_by: Literal["caller", "bot"] | None = None
        self.ended_at: float | None = None
        self.spoke: list[tuple[float, float]] = []
        self.started_at = 0.0
        self.skipped: list[str] = []

    @property
    def heard_seconds(self) -> float:
        """Seconds of the bot's audio the caller heard in total."""
        return sum(len(h.audio) for h in self.heard) / 8000

    def heard_between(self, start: float, end: float = math.inf) -> float:
        """Seconds of the bot's audio heard in frames that started within ``[start, end)``."""
        return sum(len(h.audio) for h in self.heard if start <= h.time < end) / 8000

    def heard_audio(self) -> bytes:
        """Everything heard, concatenated (gaps left out)."""
        return b"".join(h.audio for h in self.heard)

    def played_marks(self) -> list[str]:
        """Names of the marks echoed because their audio played (not flushed by a clear)."""
        return [m.name for m in self.marks if not m.cleared]

    def __repr__(self) -> str:
        return (
            f"<CallRecord {self.call_sid} heard={self.heard_seconds:.2f}s "
            f"marks={len(self.marks)} clears={len(self.clears)} ended_by={self.ended_by}>"
        )
