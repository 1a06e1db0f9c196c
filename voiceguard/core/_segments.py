"""The caller's speech segments as the turn engine knows them.

The server's VAD opens a segment with ``speech_started`` (its ``item_id`` is the user item the
segment becomes) and ends it with ``speech_stopped`` and ``input_audio_buffer.committed``. The
engine judges each segment (real speech, or echo and noise), and, for a bot in between, holds the
segment's events back until the judgement (and, for a barge-in, its confirmation) says whether the
bot may see them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, final

__all__ = ("Segment", "Segments")

#: Segments remembered (one per speech_started; a few dozen are plenty).
_REMEMBERED: Final = 32


@final
@dataclass(slots=True)
class Segment:
    """One caller segment.

    Attributes:
        item_id: The user item of the segment.
        audio_start_ms: Its ``audio_start_ms`` (ms of input audio, with the prefix padding).
        real: The judgement: True for the caller's speech, False for echo or noise (or a false
            interruption), None while it is being judged.
        committed: The turn was committed (``input_audio_buffer.committed``).
        held: The segment's events not shown to the bot yet, in order.
    """

    item_id: str
    audio_start_ms: int | None = None
    real: bool | None = None
    committed: bool = False
    held: list[object] = field(default_factory=list)


@final
class Segments:
    """The latest caller segments, oldest forgotten first."""

    __slots__ = ("_segments",)

    def __init__(self) -> None:
        self._segments: OrderedDict[str, Segment] = OrderedDict()

    def open(self, item_id: str, audio_start_ms: int | None) -> Segment:
        """A ``speech_started``: the segment (a repeated one is the same segment)."""
        segment = self._segments.get(item_id)
        if segment is None:
            segment = self._segments[item_id] = Segment(item_id, audio_start_ms)
            while len(self._segments) > _REMEMBERED:
                self._segments.popitem(last=False)
        return segment

    def get(self, item_id: str) -> Segment | None:
        """The segment *item_id*, if it is remembered."""
        return self._segments.get(item_id)

    def judgement(self, item_id: str) -> bool | None:
        """Whether *item_id* was real speech (None: not judged yet, or unknown)."""
        segment = self._segments.get(item_id)
        return None if segment is None else segment.real
