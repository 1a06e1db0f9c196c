"""PhoneClock: where the phone's playback is, by the clock.

Twilio plays what it is handed in order, in real time, from the moment it gets it (or from the end
of what it is still playing). :class:`PhoneClock` keeps that schedule for the bot's audio, as 8 kHz
mu-law, so that the turn engine can

* feed the calibration gate the bot's audio frame by frame *as it plays* (its echo reference):
  audio handed over ahead of time has not been said yet;
* tell whether the phone is still playing, and how much of an item the caller has heard, when no
  mark says so (a bot whose phone socket is not watched).

It is pure: it does no I/O and never reads a clock; ``now`` is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, final

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS

__all__ = ("HEARING_DELAY", "PhoneClock")

#: mu-law at 8 kHz: 8 bytes of audio per millisecond.
_BYTES_PER_MS: Final = 8.0
#: Items whose played length is remembered (a call plays one item at a time).
_ITEMS_REMEMBERED: Final = 8
#: Seconds from audio being handed over to its being heard, at the least (the network to the
#: phone and its jitter buffer). A heard position taken from the clock lags by this much, so it
#: never runs ahead of the caller's ear.
HEARING_DELAY: Final = 0.25


@dataclass(slots=True)
class _Span:
    item_id: str
    start: float  # when it starts playing
    offset_ms: float  # its position in its item
    ms: float


@final
class PhoneClock:
    """The phone's playback schedule of the bot's audio (8 kHz mu-law)."""

    __slots__ = ("_end", "_frames", "_played_ms", "_rest", "_spans")

    def __init__(self) -> None:
        self._spans: deque[_Span] = deque()
        self._frames: deque[tuple[float, bytes]] = deque()  # (starts playing at, one 20 ms frame)
        self._rest = b""
        self._end = 0.0  # when everything handed over will have played
        self._played_ms: dict[str, float] = {}  # item -> ms played of spans already over

    def handed(self, item_id: str, offset_ms: float, audio: bytes, now: float) -> None:
        """*audio* (mu-law) of *item_id*, starting *offset_ms* into it, was handed over at *now*."""
        if not audio:
            return
        ms = len(audio) / _BYTES_PER_MS
        start = max(now, self._end)
        self._spans.append(_Span(item_id=item_id, start=start, offset_ms=offset_ms, ms=ms))
        self._end = start + ms / 1000.0
        data = self._rest + audio
        whole = len(data) - len(data) % FRAME_BYTES
        self._rest = data[whole:]
        first = self._end - whole / _BYTES_PER_MS / 1000.0
        for index, at in enumerate(range(0, whole, FRAME_BYTES)):
            self._frames.append((first + index * FRAME_SECONDS, data[at : at + FRAME_BYTES]))

    def played(self, now: float) -> list[bytes]:
        """The 20 ms frames that started playing by *now* and were not returned before."""
        frames = self._frames
        out = []
        while frames and frames[0][0] <= now:
            out.append(frames.popleft()[1])
        return out

    def playing(self, now: float) -> bool:
        """True while audio handed over has not finished playing."""
        return now < self._end

    def heard_ms(self, item_id: str, now: float) -> float | None:
        """How far into *item_id* the caller has heard by *now*, at the least (None if none of it
        was handed over): the clock's playback position less :data:`HEARING_DELAY`."""
        now -= HEARING_DELAY
        spans = self._spans
        while spans and spans[0].start + spans[0].ms / 1000.0 <= now:
            done = spans.popleft()
            self._remember(done.item_id, done.offset_ms + done.ms)
        for span in spans:
            if span.item_id == item_id and span.start < now:
                return span.offset_ms + 1000.0 * (now - span.start)
            if span.start >= now:
                break
        return self._played_ms.get(item_id)

    def cleared(self, now: float) -> None:
        """The phone's buffer was flushed (Twilio ``clear``): what had not played never will."""
        for span in self._spans:
            if span.start < now:
                played = min(span.ms, 1000.0 * (now - span.start))
                self._remember(span.item_id, span.offset_ms + played)
        self._spans.clear()
        self._frames.clear()
        self._rest = b""
        self._end = min(self._end, now)

    def _remember(self, item_id: str, played_ms: float) -> None:
        self._played_ms.pop(item_id, None)
        self._played_ms[item_id] = played_ms
        while len(self._played_ms) > _ITEMS_REMEMBERED:
            self._played_ms.pop(next(iter(self._played_ms)))
