"""PlayoutBuffer: the model's audio, paced to the phone, with a mark per chunk.

The model generates audio faster than real time; the phone plays it in real time. A bridge that
forwards every delta at once piles seconds of audio into the phone's buffer, and then neither knows
what the caller has heard nor can stop the bot quickly. :class:`PlayoutBuffer` keeps the audio on
our side and hands the phone only a bounded lead (a few hundred ms), one chunk at a time, each
followed by a uniquely named ``mark``. Twilio echoes a mark when the audio before it has played, so
the last echoed mark is the caller's heard position, to the chunk.

It is pure: it does no I/O and never reads a clock. The caller asks :meth:`PlayoutBuffer.pull`
for the chunks due at ``now`` and sends each as a ``media`` message followed by its ``mark``;
:meth:`PlayoutBuffer.next_deadline` says when to ask again.

Barge-in: :meth:`PlayoutBuffer.pause` stops the sending and rewinds every chunk the caller has not
heard back into the queue; the caller then sends Twilio ``clear``. The marks Twilio echoes because
of that ``clear`` are recognised and do not count as heard. :meth:`PlayoutBuffer.resume` plays on
from the heard position (a false interruption); :meth:`PlayoutBuffer.drop` discards a cancelled
response's audio (a real one).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import final

from voiceguard.config import PlayoutConfig
from voiceguard.errors import StateTransitionError

__all__ = ("HeardPosition", "PlayoutBuffer", "PlayoutChunk", "PlayoutStatistics")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PlayoutChunk:
    """One piece of audio to send to the phone now, followed by its mark.

    Attributes:
        item_id: The assistant item the audio belongs to.
        response_id: The response that produced it.
        audio: The audio bytes in the session's output format (mu-law for Twilio).
        start_ms: Where the chunk starts within its item, in ms of audio.
        end_ms: Where it ends within its item; the heard position once its mark is echoed.
        mark: The name of the ``mark`` to send right after the ``media`` message.
        passenger: True for a mark of someone else's queued with the audio
            (:meth:`PlayoutBuffer.push_mark`): send only the ``mark``, no ``media``. Its echo
            is not this buffer's.
    """

    item_id: str
    response_id: str
    audio: bytes = field(repr=False)
    start_ms: float
    end_ms: float
    mark: str
    passenger: bool = False


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HeardPosition:
    """How much of an item the caller has heard, from an echoed mark.

    Attributes:
        item_id: The assistant item.
        response_id: The response that produced it.
        heard_ms: Milliseconds of the item's audio that have played on the phone.
    """

    item_id: str
    response_id: str
    heard_ms: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PlayoutStatistics:
    """An immutable snapshot of a :class:`PlayoutBuffer`'s counters.

    Attributes:
        chunks_sent: Chunks handed to the phone (a chunk sent again after a rewind counts again).
        marks_played: Echoed marks that moved the heard position.
        marks_flushed: Echoed marks that only came back because of a ``clear``.
        marks_unknown: Echoed marks this buffer never sent (another stream's, or forgotten).
        pauses: Times the playout was paused with audio on the phone.
        rewound_ms: Audio rewound for replay by pauses, in ms.
        dropped_ms: Audio discarded by :meth:`PlayoutBuffer.drop`, in ms.
        queued_ms: Audio waiting to be sent now.
        unheard_ms: Audio sent to the phone and not yet confirmed heard now.
    """

    chunks_sent: int
    marks_played: int
    marks_flushed: int
    marks_unknown: int
    pauses: int
    rewound_ms: float
    dropped_ms: float
    queued_ms: float
    unheard_ms: float


#: Items whose pushed length is remembered (a call plays one item at a time; a few is plenty).
_ITEMS_REMEMBERED = 16
#: Tolerance for float sums of chunk durations when comparing times (a nanosecond).
_EPSILON = 1e-9


@dataclass(slots=True)
class _Pending:
    """Audio of one item not yet sent (or rewound for sending again), or a passenger mark."""

    item_id: str
    response_id: str
    audio: bytearray
    start_ms: float  # position of audio[0] within the item
    passenger: str | None = None  # the name of a mark that travels with the audio


@final
class PlayoutBuffer:
    """Paces one call's outbound audio to the phone and tracks what the caller heard.

    Args:
        config: Chunk length, lead, and the audio format's bytes per ms.

    Use one per call. Every method is synchronous and cheap; ``now`` is monotonic seconds.
    """

    __slots__ = (
        "_chunk_bytes",
        "_config",
        "_counts",
        "_flushed",
        "_heard",
        "_mark_ids",
        "_outstanding",
        "_paused",
        "_phone_end",
        "_pushed_ms",
        "_queue",
    )

    def __init__(self, *, config: PlayoutConfig | None = None) -> None:
        self._config = config if config is not None else PlayoutConfig()
        fmt = self._config.audio_format
        self._chunk_bytes = max(
            fmt.sample_width,
            round(self._config.chunk_ms * fmt.bytes_per_ms / fmt.sample_width) * fmt.sample_width,
        )
        self._queue: deque[_Pending] = deque()
        # How much audio of each recent item was pushed: where its next audio starts.
        self._pushed_ms: OrderedDict[str, float] = OrderedDict()
        # Sent and not yet echoed, oldest first: mark name -> chunk.
        self._outstanding: OrderedDict[str, PlayoutChunk] = OrderedDict()
        # Marks that will come back only because of a clear; bounded by what was outstanding.
        self._flushed: set[str] = set()
        self._mark_ids = itertools.count(1)
        self._phone_end = -math.inf  # when the phone will have played everything sent
        self._paused = False
        self._heard: HeardPosition | None = None
        self._counts = {
            "chunks_sent": 0,
            "marks_played": 0,
            "marks_flushed": 0,
            "marks_unknown": 0,
            "pauses": 0,
            "rewound_bytes": 0,
            "dropped_bytes": 0,
        }

    # ------------------------------------------------------------------ facts

    @property
    def config(self) -> PlayoutConfig:
        """The buffer's configuration."""
        return self._config

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    @property
    def playing(self) -> bool:
        """True while audio was sent to the phone and its marks have not all come back."""
        return bool(self._outstanding)

    @property
    def idle(self) -> bool:
        """True when nothing is queued and nothing is playing."""
        return not self._queue and not self._outstanding

    @property
    def heard(self) -> HeardPosition | None:
        """The latest heard position, or ``None`` before the first mark came back."""
        return self._heard

    @property
    def queued_ms(self) -> float:
        """Audio waiting to be sent, in ms."""
        return sum(len(p.audio) for p in self._queue) / self._config.audio_format.bytes_per_ms

    @property
    def unheard_ms(self) -> float:
        """Audio sent to the phone whose mark has not come back yet, in ms."""
        return sum(c.end_ms - c.start_ms for c in self._outstanding.values())

    def sent_position(self, item_id: str) -> float | None:
        """How far into *item_id* the audio sent to the phone reaches, if any was sent."""
        ends = [c.end_ms for c in self._outstanding.values() if c.item_id == item_id]
        if ends:
            return max(ends)
        heard = self._heard
        return heard.heard_ms if heard is not None and heard.item_id == item_id else None

    def owns(self, name: str) -> bool:
        """True if the echoed mark *name* is one of this buffer's (sent, or flushed by a clear)."""
        return name in self._outstanding or name in self._flushed

    def statistics(self) -> PlayoutStatistics:
        """Return an immutable snapshot of the counters."""
        per_ms = self._config.audio_format.bytes_per_ms
        return PlayoutStatistics(
            chunks_sent=self._counts["chunks_sent"],
            marks_played=self._counts["marks_played"],
            marks_flushed=self._counts["marks_flushed"],
            marks_unknown=self._counts["marks_unknown"],
            pauses=self._counts["pauses"],
            rewound_ms=self._counts["rewound_bytes"] / per_ms,
            dropped_ms=self._counts["dropped_bytes"] / per_ms,
            queued_ms=self.queued_ms,
            unheard_ms=self.unheard_ms,
        )

    # ------------------------------------------------------------------ audio in

    def push(self, *, item_id: str, response_id: str, audio: bytes) -> None:
        """Queue audio of an assistant item (a model audio delta), after what is queued.

        Raises:
            StateTransitionError: If *audio* is not a whole number of samples of the format.
        """
        if not audio:
            return
        width = self._config.audio_format.sample_width
        if len(audio) % width:
            raise StateTransitionError(
                state="playout",
                event="push",
                detail=f"{len(audio)} bytes is not a whole number of {width}-byte samples",
            )
        start = self._pushed_ms.pop(item_id, 0.0)
        self._pushed_ms[item_id] = start + len(audio) / self._config.audio_format.bytes_per_ms
        while len(self._pushed_ms) > _ITEMS_REMEMBERED:
            self._pushed_ms.popitem(last=False)
        tail = self._queue[-1] if self._queue else None
        if (
            tail is not None
            and tail.item_id == item_id
            and tail.start_ms + len(tail.audio) / self._config.audio_format.bytes_per_ms == start
        ):
            tail.audio += audio
            return
        self._queue.append(_Pending(item_id, response_id, bytearray(audio), start))

    def push_mark(self, name: str) -> None:
        """Queue someone else's mark after the audio queued so far.

        A bot that forwards the model's audio itself sends its own marks after it; they keep
        their place in the audio, so they are sent (and echoed by Twilio) after the audio before
        them, paused, rewound and resumed with it. :meth:`pull` returns each as a
        :attr:`~PlayoutChunk.passenger` chunk as soon as the audio before it has been sent.

        .. versionadded:: 0.2.0
        """
        self._queue.append(_Pending("", "", bytearray(), 0.0, passenger=name))

    # ------------------------------------------------------------------ pacing

    def next_deadline(self) -> float | None:
        """When :meth:`pull` will next return a chunk, or ``None`` if it will not (paused/empty).

        May be in the past: then call :meth:`pull` now.
        """
        if self._paused or not self._queue:
            return None
        if self._queue[0].passenger is not None:
            return -math.inf  # a passenger goes as soon as the audio before it went
        return self._deadline()

    def _deadline(self) -> float:
        # Send the next chunk once it fits within the lead; with a lead shorter than a chunk,
        # when the phone runs dry.
        slack = max(0.0, self._config.lead - self._config.chunk_ms / 1000)
        return self._phone_end - slack

    def pull(self, now: float) -> list[PlayoutChunk]:
        """The chunks to send to the phone at *now*, each to be followed by its mark.

        Keeps the phone's buffer at most :attr:`~voiceguard.PlayoutConfig.lead` seconds ahead
        of real time. Returns nothing while paused.
        """
        if self._paused:
            return []
        # The phone ran dry (or this is the first chunk): it plays from now.
        self._phone_end = max(self._phone_end, now)
        per_ms = self._config.audio_format.bytes_per_ms
        out: list[PlayoutChunk] = []
        # The same expression as next_deadline(), so a caller woken at the deadline gets a chunk.
        while self._queue:
            head = self._queue[0]
            if head.passenger is not None:
                self._queue.popleft()
                out.append(
                    PlayoutChunk(
                        item_id="",
                        response_id="",
                        audio=b"",
                        start_ms=0.0,
                        end_ms=0.0,
                        mark=head.passenger,
                        passenger=True,
                    )
                )
                continue
            if now + _EPSILON < self._deadline():
                break
            data = bytes(head.audio[: self._chunk_bytes])
            del head.audio[: len(data)]
            duration_ms = len(data) / per_ms
            chunk = PlayoutChunk(
                item_id=head.item_id,
                response_id=head.response_id,
                audio=data,
                start_ms=head.start_ms,
                end_ms=head.start_ms + duration_ms,
                mark=f"vg{next(self._mark_ids)}",
            )
            head.start_ms = chunk.end_ms
            if not head.audio:
                self._queue.popleft()
            self._outstanding[chunk.mark] = chunk
            self._phone_end += duration_ms / 1000
            self._counts["chunks_sent"] += 1
            out.append(chunk)
        return out

    # ------------------------------------------------------------------ marks

    def mark_played(self, name: str) -> HeardPosition | None:
        """Take Twilio's echo of the mark *name*.

        Returns:
            The new heard position, or ``None`` if the echo does not mean audio was heard: it
            came back because of a ``clear``, or this buffer never sent it.
        """
        if name in self._flushed:
            self._flushed.discard(name)
            self._counts["marks_flushed"] += 1
            return None
        if name not in self._outstanding:
            self._counts["marks_unknown"] += 1
            return None
        # The phone plays in order: every mark sent before this one has played too, even if its
        # own echo was lost.
        while True:
            oldest, chunk = self._outstanding.popitem(last=False)
            if oldest == name:
                break
        self._counts["marks_played"] += 1
        self._heard = HeardPosition(
            item_id=chunk.item_id, response_id=chunk.response_id, heard_ms=chunk.end_ms
        )
        return self._heard

    # ------------------------------------------------------------------ barge-in

    def pause(self) -> bool:
        """Stop sending, and rewind every chunk the caller has not heard into the queue.

        Returns:
            True if audio was on the phone: send Twilio ``clear`` now. The marks Twilio echoes
            because of it will not count as heard.
        """
        self._paused = True
        if not self._outstanding:
            return False
        chunks = list(self._outstanding.values())
        self._flushed.update(self._outstanding)
        self._outstanding.clear()
        self._phone_end = -math.inf
        self._counts["pauses"] += 1
        # Put the unheard audio back in front, in order, merged per item.
        rewound: list[_Pending] = []
        for chunk in chunks:
            self._counts["rewound_bytes"] += len(chunk.audio)
            last = rewound[-1] if rewound else None
            if last is not None and last.item_id == chunk.item_id:
                last.audio += chunk.audio
            else:
                rewound.append(
                    _Pending(
                        chunk.item_id, chunk.response_id, bytearray(chunk.audio), chunk.start_ms
                    )
                )
        if rewound and self._queue and self._queue[0].item_id == rewound[-1].item_id:
            head = self._queue.popleft()
            rewound[-1].audio += head.audio
        self._queue.extendleft(reversed(rewound))
        return True

    def resume(self) -> None:
        """Play on from the heard position (after a false interruption)."""
        self._paused = False

    def drop(self, *, response_id: str | None = None) -> float:
        """Discard queued audio of *response_id* (all queued audio when omitted).

        Use it when a barge-in is confirmed: after :meth:`pause`, the unheard rest of the
        cancelled response is in the queue. Passenger marks stay (they are sent, and echoed at
        once, as Twilio echoes pending marks on a ``clear``). Returns the ms of audio dropped.
        """
        kept: deque[_Pending] = deque()
        dropped = 0
        for pending in self._queue:
            if pending.passenger is None and (
                response_id is None or pending.response_id == response_id
            ):
                dropped += len(pending.audio)
            else:
                kept.append(pending)
        self._queue = kept
        self._counts["dropped_bytes"] += dropped
        return dropped / self._config.audio_format.bytes_per_ms
