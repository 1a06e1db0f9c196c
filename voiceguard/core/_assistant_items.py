"""The assistant audio items of a call: how much of each was received, sent, heard, truncated.

:class:`AssistantItems` is the part of :class:`~voiceguard.CallState` that keeps these positions
(recent items only), from the model's output items and audio deltas and from what the playout
reports. Truncation needs them: a ``conversation.item.truncate`` may keep what the caller heard,
never more than the model sent.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import final

from voiceguard.audio import AudioFormat
from voiceguard.core._responses import ResponseLifecycle
from voiceguard.core.lifecycle import ResponseMatch, ResponsePhase
from voiceguard.errors import StateTransitionError
from voiceguard.protocol.realtime import AudioDelta, OutputItemAdded

__all__ = ("AssistantItem", "AssistantItems")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantItem:
    """What is known about one assistant audio item.

    Attributes:
        item_id: The conversation item id.
        response_id: The response that produced it.
        received_ms: Milliseconds of its audio received from the model so far.
        sent_ms: Milliseconds of its audio handed to the phone (reported by the playout).
        heard_ms: Milliseconds of its audio the caller has heard (reported by the playout, from
            echoed marks).
        truncated_ms: The ``audio_end_ms`` it was truncated to, if a truncate was sent.
    """

    item_id: str
    response_id: str
    received_ms: float = 0.0
    sent_ms: float = 0.0
    heard_ms: float = 0.0
    truncated_ms: int | None = None


@final
@dataclass(init=False, slots=True)
class AssistantItems:
    """The most recent assistant audio items of a call, the current one last.

    Args:
        limit: How many items to remember (the oldest are forgotten first).
        responses: The call's response lifecycle (only audio of the active response counts).
        counts: The call's counters; ``late_deltas`` and ``truncates_sent`` are counted here.
        anomaly: Records a peer event that did not fit, by kind.

    Compared by value (the callback aside), like the other parts of a call's state.
    """

    _items: OrderedDict[str, AssistantItem]
    _current_id: str | None
    _limit: int
    _responses: ResponseLifecycle
    _counts: Counter[str]
    _anomaly: Callable[[str], None] = field(compare=False, repr=False)

    def __init__(
        self,
        limit: int,
        *,
        responses: ResponseLifecycle,
        counts: Counter[str],
        anomaly: Callable[[str], None],
    ) -> None:
        self._limit = limit
        self._responses = responses
        self._counts = counts
        self._anomaly = anomaly
        self._items = OrderedDict()
        self._current_id = None

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    @property
    def current(self) -> AssistantItem | None:
        """The item most recently started, if any."""
        if self._current_id is None:
            return None
        return self._items[self._current_id]

    def get(self, item_id: str) -> AssistantItem | None:
        """What is known about *item_id*, if it is remembered."""
        return self._items.get(item_id)

    def _start(self, item_id: str, response_id: str) -> AssistantItem:
        item = AssistantItem(item_id=item_id, response_id=response_id)
        self._items[item_id] = item
        self._items.move_to_end(item_id)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        self._current_id = item_id
        return item

    def output_item(self, event: OutputItemAdded) -> None:
        """``response.output_item.added``: an assistant message item starts."""
        if event.item_type != "message" or event.role not in (None, "assistant"):
            return
        responses = self._responses
        responses.adopt_early_output(event.response_id)
        if event.item_id in self._items:
            self._anomaly("duplicate_output_item")
        elif responses.match(event.response_id) is not ResponseMatch.ACTIVE:
            self._anomaly("output_item_of_inactive_response")
        else:
            self._start(event.item_id, event.response_id)

    def audio(self, event: AudioDelta, audio_format: AudioFormat) -> None:
        """An audio delta of the model, in *audio_format*: more audio received for its item."""
        responses = self._responses
        responses.adopt_early_output(event.response_id)
        if responses.match(event.response_id) is not ResponseMatch.ACTIVE:
            self._counts["late_deltas"] += 1  # of a finished or unknown response: never played
            return
        item = self._items.get(event.item_id)
        if item is None:
            # The output item event was lost: adopt the item so truncation still has a bound.
            self._anomaly("audio_for_unannounced_item")
            item = self._start(event.item_id, event.response_id)
        if responses.phase is ResponsePhase.CANCEL_REQUESTED:
            self._counts["late_deltas"] += 1  # generated before the cancel landed; not played
        ms = event.num_bytes / audio_format.bytes_per_ms
        self._items[event.item_id] = dataclasses.replace(item, received_ms=item.received_ms + ms)

    def truncated(self, item_id: str, audio_end_ms: int) -> None:
        """Record a ``conversation.item.truncate`` sent (see ``CallState.truncate_sent``).

        Raises:
            StateTransitionError: If the item is unknown, or *audio_end_ms* exceeds the audio
                received for it. Nothing is recorded.
        """
        item = self._items.get(item_id)
        if item is None:
            raise StateTransitionError(
                state=self._responses.describe(),
                event="TRUNCATE_SENT",
                detail=f"item {item_id!r} is not a known assistant audio item",
            )
        if audio_end_ms < 0 or audio_end_ms > math.floor(item.received_ms):
            raise StateTransitionError(
                state=self._responses.describe(),
                event="TRUNCATE_SENT",
                detail=(
                    f"audio_end_ms={audio_end_ms} is outside the {item.received_ms:.0f} ms of "
                    f"audio received for item {item_id!r}"
                ),
            )
        self._items[item_id] = dataclasses.replace(item, truncated_ms=audio_end_ms)
        self._counts["truncates_sent"] += 1

    def played(self, item_id: str, sent_ms: float | None, heard_ms: float | None) -> None:
        """Move an item's sent and heard positions forward (see ``CallState.record_playout``)."""
        item = self._items.get(item_id)
        if item is None:
            return
        new_sent = item.sent_ms if sent_ms is None else max(item.sent_ms, sent_ms)
        new_heard = item.heard_ms if heard_ms is None else max(item.heard_ms, heard_ms)
        self._items[item_id] = dataclasses.replace(item, sent_ms=new_sent, heard_ms=new_heard)

    def cleared(self) -> None:
        """The phone's buffer was cleared: the current item's sent position falls to its heard."""
        item = self.current
        if item is not None and item.sent_ms > item.heard_ms:
            self._items[item.item_id] = dataclasses.replace(item, sent_ms=item.heard_ms)

    @property
    def playing(self) -> bool:
        """True while audio of the current item was handed to the phone but not yet heard."""
        item = self.current
        return item is not None and item.sent_ms > item.heard_ms

    def truncate_point(self, item_id: str | None) -> int | None:
        """Heard audio clamped to received audio, in whole ms (the current item when ``None``)."""
        item = self.current if item_id is None else self._items.get(item_id)
        if item is None:
            return None
        return math.floor(min(item.heard_ms, item.received_ms))
