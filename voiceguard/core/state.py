"""CallState: the one source of truth about a call, derived from observed events.

:class:`CallState` is fed every server event the bridge receives (:meth:`CallState.observe`) and
told about every lifecycle message the bridge sends (:meth:`CallState.create_sent`,
:meth:`CallState.cancel_sent`, :meth:`CallState.truncate_sent`). The guards read it; nobody keeps a
parallel flag.

The response lifecycle is a table (:data:`TRANSITIONS`) from ``(phase, trigger, which response)``
to the next phase, in the style of h11's state machine. Triggers that come from the peer never
raise: a duplicate, late or unknown ``response.done`` is an expected race, recorded as an anomaly
and counted. Triggers that the caller reports (a create or cancel it sent) raise
:class:`~voiceguard.errors.StateTransitionError` when the table forbids them, and leave the state
unchanged: the guard would have refused that send.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, final

from voiceguard.config import StateConfig
from voiceguard.errors import StateTransitionError
from voiceguard.protocol.realtime import (
    PCMU,
    AudioDelta,
    AudioDone,
    AudioFormat,
    InputTranscriptionCompleted,
    OutputItemAdded,
    RealtimeError,
    RealtimeServerEvent,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
)

__all__ = (
    "TRANSITIONS",
    "AssistantItem",
    "CallState",
    "CallStateStatistics",
    "LifecycleTrigger",
    "ResponseMatch",
    "ResponsePhase",
)

logger = logging.getLogger("voiceguard.state")

#: Error codes of the Realtime API that reject a client ``response.create`` / ``response.cancel``.
CREATE_REJECTED_CODE: Final = "conversation_already_has_active_response"
CANCEL_REJECTED_CODE: Final = "response_cancel_not_active"


@final
class ResponsePhase(enum.Enum):
    """Where the response lifecycle of the default conversation stands."""

    #: No response has existed in this call yet.
    NONE = "NONE"
    #: A ``response.create`` was sent; its ``response.created`` has not arrived.
    CREATE_REQUESTED = "CREATE_REQUESTED"
    #: A response is active (``response.created`` arrived, ``response.done`` did not).
    CREATED = "CREATED"
    #: A ``response.cancel`` for the active response was sent; its ``response.done`` is not here.
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    #: No response is active; the last create or response has ended (done, or rejected).
    DONE = "DONE"


@final
class LifecycleTrigger(enum.Enum):
    """What moves the response lifecycle."""

    #: The caller sent ``response.create`` (local).
    CREATE_SENT = "CREATE_SENT"
    #: The caller sent ``response.cancel`` (local).
    CANCEL_SENT = "CANCEL_SENT"
    #: The server sent ``response.created`` (remote).
    RESPONSE_CREATED = "RESPONSE_CREATED"
    #: The server sent ``response.done`` (remote).
    RESPONSE_DONE = "RESPONSE_DONE"
    #: The server rejected the caller's create (remote ``error``).
    CREATE_REJECTED = "CREATE_REJECTED"
    #: The caller gave up waiting for a create's ``response.created`` (local: a lost request).
    CREATE_ABANDONED = "CREATE_ABANDONED"
    #: The server rejected the caller's cancel because nothing was active (remote ``error``).
    CANCEL_REJECTED = "CANCEL_REJECTED"


@final
class ResponseMatch(enum.Enum):
    """How the response a trigger names relates to what the state knows."""

    #: The trigger names no response, or the active one.
    ACTIVE = "ACTIVE"
    #: The trigger names a response that is already finished.
    FINISHED = "FINISHED"
    #: The trigger names a response the state has never seen.
    OTHER = "OTHER"


_P = ResponsePhase
_T = LifecycleTrigger
_M = ResponseMatch
_IDLE: Final = (_P.NONE, _P.DONE)
_BUSY: Final = (_P.CREATED, _P.CANCEL_REQUESTED)


def _build_transitions() -> Mapping[
    tuple[ResponsePhase, LifecycleTrigger, ResponseMatch], ResponsePhase | str
]:
    """The lifecycle table. A ``str`` value is an illegal move and says why."""
    table: dict[tuple[ResponsePhase, LifecycleTrigger, ResponseMatch], ResponsePhase | str] = {}
    for phase in ResponsePhase:
        for match in ResponseMatch:
            # Local: what the guards would have refused.
            if phase in _IDLE:
                table[phase, _T.CREATE_SENT, match] = _P.CREATE_REQUESTED
                table[phase, _T.CANCEL_SENT, match] = "no response is active"
            elif phase is _P.CREATE_REQUESTED:
                table[phase, _T.CREATE_SENT, match] = "a response.create is already in flight"
                table[phase, _T.CANCEL_SENT, match] = (
                    "the response has not been created yet; nothing can be cancelled"
                )
            else:
                table[phase, _T.CREATE_SENT, match] = "a response is active"
                if phase is _P.CANCEL_REQUESTED:
                    table[phase, _T.CANCEL_SENT, match] = "a response.cancel is already in flight"
                elif match is _M.ACTIVE:
                    table[phase, _T.CANCEL_SENT, match] = _P.CANCEL_REQUESTED
                elif match is _M.FINISHED:
                    table[phase, _T.CANCEL_SENT, match] = "that response is already done"
                else:
                    table[phase, _T.CANCEL_SENT, match] = "that response is not the active one"

            if phase is _P.CREATE_REQUESTED:
                table[phase, _T.CREATE_ABANDONED, match] = _P.DONE
            else:
                table[phase, _T.CREATE_ABANDONED, match] = "no response.create is in flight"

            # Remote: never illegal; anomalies keep the phase.
            # response.created: a finished id is a late duplicate; any other id becomes active.
            if match is _M.FINISHED or (phase in _BUSY and match is _M.ACTIVE):
                table[phase, _T.RESPONSE_CREATED, match] = phase
            else:
                table[phase, _T.RESPONSE_CREATED, match] = _P.CREATED
            # response.done ends the active response; one never seen created ends a pending create
            # (its response.created was lost); a finished id is a duplicate.
            if (phase in _BUSY and match is _M.ACTIVE) or (
                phase is _P.CREATE_REQUESTED and match is _M.OTHER
            ):
                table[phase, _T.RESPONSE_DONE, match] = _P.DONE
            else:
                table[phase, _T.RESPONSE_DONE, match] = phase
            # Rejections: a rejected create ends the request; "cancel not active" means the
            # response we wanted to cancel has already ended.
            if phase is _P.CREATE_REQUESTED:
                table[phase, _T.CREATE_REJECTED, match] = _P.DONE
            else:
                table[phase, _T.CREATE_REJECTED, match] = phase
            if phase is _P.CANCEL_REQUESTED:
                table[phase, _T.CANCEL_REJECTED, match] = _P.DONE
            else:
                table[phase, _T.CANCEL_REJECTED, match] = phase
    return MappingProxyType(table)


#: ``(phase, trigger, match) -> next phase``, or a ``str`` saying why the move is illegal.
#: Only the triggers the bridge reports (``CREATE_SENT``, ``CANCEL_SENT``, ``CREATE_ABANDONED``)
#: can be illegal.
TRANSITIONS: Final = _build_transitions()


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
@dataclass(frozen=True, slots=True, kw_only=True)
class CallStateStatistics:
    """An immutable snapshot of a :class:`CallState`'s counters.

    Attributes:
        phase: The current response phase.
        responses_created: ``response.created`` events that started a response.
        responses_done: ``response.done`` events that ended the active response.
        creates_sent: Creates reported as sent.
        cancels_sent: Cancels reported as sent.
        truncates_sent: Truncates reported as sent.
        late_deltas: Audio deltas of responses that were finished or being cancelled.
        anomalies: Peer events that did not fit the lifecycle (duplicates, unknown ids), by kind.
    """

    phase: ResponsePhase
    responses_created: int
    responses_done: int
    creates_sent: int
    cancels_sent: int
    truncates_sent: int
    late_deltas: int
    anomalies: Mapping[str, int]


@final
class CallState:
    """The state of one call, derived from the events observed on it.

    Args:
        config: Bounds on what is remembered.
        call_sid: The call's id, used only to label log records.
        stream_sid: The media stream's id, used only to label log records.

    Use one instance per call. It does no I/O and never reads a clock: times are passed in.
    """

    __slots__ = (
        "_active_response_id",
        "_anomalies",
        "_audio_complete",
        "_audio_format",
        "_closing",
        "_config",
        "_counts",
        "_create_event_id",
        "_create_response",
        "_current_item_id",
        "_finished",
        "_greeting_lock",
        "_greeting_pending",
        "_greeting_response_id",
        "_hangup_pending",
        "_interrupt_response",
        "_items",
        "_last_cancel_at",
        "_last_create_at",
        "_phase",
        "_user_has_spoken",
        "call_sid",
        "stream_sid",
    )

    def __init__(
        self,
        *,
        config: StateConfig | None = None,
        call_sid: str | None = None,
        stream_sid: str | None = None,
    ) -> None:
        self._config = config if config is not None else StateConfig()
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self._phase = ResponsePhase.NONE
        self._active_response_id: str | None = None
        self._audio_complete = False
        self._finished: OrderedDict[str, str] = OrderedDict()  # response id -> final status
        self._create_event_id: str | None = None
        self._last_cancel_at: float | None = None
        self._last_create_at: float | None = None
        # The server's defaults until session.created / session.updated say otherwise.
        self._interrupt_response = True
        self._create_response = True
        self._audio_format: AudioFormat = PCMU
        self._items: OrderedDict[str, AssistantItem] = OrderedDict()
        self._current_item_id: str | None = None
        self._greeting_lock = False
        self._greeting_pending = False
        self._greeting_response_id: str | None = None
        self._closing = False
        self._hangup_pending = False
        self._user_has_spoken = False
        self._counts: Counter[str] = Counter()
        self._anomalies: Counter[str] = Counter()

    # ------------------------------------------------------------------ read-only facts

    @property
    def phase(self) -> ResponsePhase:
        """The current :class:`ResponsePhase`."""
        return self._phase

    @property
    def active_response_id(self) -> str | None:
        """The id of the active response (created or being cancelled), else ``None``."""
        return self._active_response_id if self._phase in _BUSY else None

    @property
    def last_response_id(self) -> str | None:
        """The id of the most recent response, active or finished."""
        if self._active_response_id is not None:
            return self._active_response_id
        return next(reversed(self._finished), None)

    @property
    def response_active(self) -> bool:
        """True while a response is created and not done (including while a cancel is in flight)."""
        return self._phase in _BUSY

    @property
    def audio_complete(self) -> bool:
        """True once the active response has generated all its audio (``output_audio.done``).

        Its ``response.done`` is then on the way; cancelling it would only race that event.
        """
        return self._audio_complete and self._phase in _BUSY

    @property
    def create_in_flight(self) -> bool:
        """True from the moment a ``response.create`` is sent until its response is created."""
        return self._phase is ResponsePhase.CREATE_REQUESTED

    @property
    def cancel_in_flight(self) -> bool:
        """True from the moment a ``response.cancel`` is sent until the response is done."""
        return self._phase is ResponsePhase.CANCEL_REQUESTED

    @property
    def last_cancel_at(self) -> float | None:
        """When the last cancel was sent (monotonic seconds), or ``None``."""
        return self._last_cancel_at

    @property
    def last_create_at(self) -> float | None:
        """When the last create was sent (monotonic seconds), or ``None``."""
        return self._last_create_at

    @property
    def server_interrupts(self) -> bool:
        """True when the session's server VAD cancels responses by itself (``interrupt_response``).

        Derived from ``session.created`` / ``session.updated``; the server's default (true) until
        then. With turn detection off it is false.
        """
        return self._interrupt_response

    @property
    def server_creates(self) -> bool:
        """True when the server VAD creates a response by itself at the end of a turn."""
        return self._create_response

    @property
    def audio_format(self) -> AudioFormat:
        """The session's output audio format (G.711 mu-law until the session says otherwise)."""
        return self._audio_format

    @property
    def closing(self) -> bool:
        """True once the call started closing."""
        return self._closing

    @property
    def hangup_pending(self) -> bool:
        """True once a hang-up started."""
        return self._hangup_pending

    @property
    def greeting_lock(self) -> bool:
        """True while the greeting holds the line (from its create until its ``response.done``)."""
        return self._greeting_lock

    @property
    def user_has_spoken(self) -> bool:
        """True once the caller has been heard saying something real."""
        return self._user_has_spoken

    @property
    def current_item(self) -> AssistantItem | None:
        """The assistant audio item most recently started, if any."""
        if self._current_item_id is None:
            return None
        return self._items[self._current_item_id]

    @property
    def audio_playing(self) -> bool:
        """True while audio of the current item was handed to the phone but not yet heard."""
        item = self.current_item
        return item is not None and item.sent_ms > item.heard_ms

    def item(self, item_id: str) -> AssistantItem | None:
        """Return what is known about the assistant item *item_id* (recent items only)."""
        return self._items.get(item_id)

    def is_finished(self, response_id: str) -> bool:
        """True if *response_id* is a finished response still remembered."""
        return response_id in self._finished

    def finished_status(self, response_id: str) -> str | None:
        """The final status (``completed``, ``cancelled``, ...) of a remembered response."""
        return self._finished.get(response_id)

    def should_play(self, response_id: str) -> bool:
        """True if audio of *response_id* may go to the phone.

        Audio of a response being cancelled, already finished, or never seen is dropped
        (DESIGN invariant 6).
        """
        return self._phase is ResponsePhase.CREATED and response_id == self._active_response_id

    def truncate_point(self, item_id: str | None = None) -> int | None:
        """The ``audio_end_ms`` to truncate an item to: heard audio, clamped to received audio.

        Args:
            item_id: The item; the current assistant item when omitted.

        Returns:
            Whole milliseconds, rounded down, or ``None`` when the item is unknown.
        """
        item = self.current_item if item_id is None else self._items.get(item_id)
        if item is None:
            return None
        return math.floor(min(item.heard_ms, item.received_ms))

    def match(self, response_id: str | None) -> ResponseMatch:
        """Classify *response_id* against the state (``None`` means "the active one")."""
        if response_id is None or (
            self._active_response_id is not None
            and response_id == self._active_response_id
            and self._phase in _BUSY
        ):
            return ResponseMatch.ACTIVE
        if response_id in self._finished:
            return ResponseMatch.FINISHED
        return ResponseMatch.OTHER

    def statistics(self) -> CallStateStatistics:
        """Return an immutable snapshot of the counters."""
        return CallStateStatistics(
            phase=self._phase,
            responses_created=self._counts["responses_created"],
            responses_done=self._counts["responses_done"],
            creates_sent=self._counts["creates_sent"],
            cancels_sent=self._counts["cancels_sent"],
            truncates_sent=self._counts["truncates_sent"],
            late_deltas=self._counts["late_deltas"],
            anomalies=MappingProxyType(dict(self._anomalies)),
        )

    def __repr__(self) -> str:
        return (
            f"<CallState phase={self._phase.value} active={self.active_response_id!r} "
            f"closing={self._closing} hangup_pending={self._hangup_pending} "
            f"greeting_lock={self._greeting_lock}>"
        )

    # ------------------------------------------------------------------ local actions

    def create_sent(
        self, *, now: float, greeting: bool = False, event_id: str | None = None
    ) -> None:
        """Record that a ``response.create`` was sent. It is in flight from this moment.

        Args:
            now: Monotonic time of the send.
            greeting: True for the greeting: the greeting lock holds until its ``response.done``.
            event_id: The ``event_id`` the create carried, to match an ``error`` against it.

        Raises:
            StateTransitionError: If a response is active or a create is in flight, or the call
                is closing or hanging up. The state is unchanged.
        """
        if self._closing or self._hangup_pending:
            raise StateTransitionError(
                state=self._describe(),
                event=LifecycleTrigger.CREATE_SENT.value,
                detail="the call is closing" if self._closing else "a hang-up is pending",
            )
        self._apply(LifecycleTrigger.CREATE_SENT, ResponseMatch.ACTIVE)
        self._create_event_id = event_id
        self._last_create_at = now
        self._counts["creates_sent"] += 1
        if greeting:
            self._greeting_lock = True
            self._greeting_pending = True

    def cancel_sent(self, *, now: float, response_id: str | None = None) -> None:
        """Record that a ``response.cancel`` was sent for the active response.

        Raises:
            StateTransitionError: If no response is active, a cancel is already in flight, or
                *response_id* is not the active response. The state is unchanged.
        """
        self._apply(LifecycleTrigger.CANCEL_SENT, self.match(response_id))
        self._last_cancel_at = now
        self._counts["cancels_sent"] += 1

    def abandon_create(self, *, now: float) -> None:
        """Give up on a ``response.create`` whose ``response.created`` never came (a lost request).

        The create is no longer in flight, so a new one may be sent (a watchdog does this). If
        the lost response shows up after all, it is tracked like any response the server started.

        Raises:
            StateTransitionError: If no create is in flight. The state is unchanged.
        """
        self._apply(LifecycleTrigger.CREATE_ABANDONED, ResponseMatch.ACTIVE)
        self._create_event_id = None
        self._anomaly("create_abandoned")
        if self._greeting_pending and self._greeting_response_id is None:
            self.release_greeting_lock()

    def truncate_sent(self, *, item_id: str, audio_end_ms: int) -> None:
        """Record that ``conversation.item.truncate`` was sent.

        Raises:
            StateTransitionError: If the item is unknown, or *audio_end_ms* exceeds the audio
                received for it (DESIGN invariant 5). The state is unchanged.
        """
        item = self._items.get(item_id)
        if item is None:
            raise StateTransitionError(
                state=self._describe(),
                event="TRUNCATE_SENT",
                detail=f"item {item_id!r} is not a known assistant audio item",
            )
        if audio_end_ms < 0 or audio_end_ms > math.floor(item.received_ms):
            raise StateTransitionError(
                state=self._describe(),
                event="TRUNCATE_SENT",
                detail=(
                    f"audio_end_ms={audio_end_ms} is outside the {item.received_ms:.0f} ms of "
                    f"audio received for item {item_id!r}"
                ),
            )
        self._items[item_id] = dataclasses.replace(item, truncated_ms=audio_end_ms)
        self._counts["truncates_sent"] += 1

    def record_playout(
        self, *, item_id: str, sent_ms: float | None = None, heard_ms: float | None = None
    ) -> None:
        """Record how much of an item's audio went to the phone and how much was heard.

        Positions only move forward; a smaller value than the known one is ignored. Unknown items
        are ignored (their audio may belong to a response that is already forgotten).
        """
        item = self._items.get(item_id)
        if item is None:
            return
        new_sent = item.sent_ms if sent_ms is None else max(item.sent_ms, sent_ms)
        new_heard = item.heard_ms if heard_ms is None else max(item.heard_ms, heard_ms)
        self._items[item_id] = dataclasses.replace(item, sent_ms=new_sent, heard_ms=new_heard)

    def playback_cleared(self) -> None:
        """Record that the phone's buffer was cleared (Twilio ``clear``): nothing plays any more.

        What was sent but not heard is no longer on its way to the caller, so the current item's
        sent position falls back to its heard position.
        """
        item = self.current_item
        if item is not None and item.sent_ms > item.heard_ms:
            self._items[item.item_id] = dataclasses.replace(item, sent_ms=item.heard_ms)

    def begin_closing(self) -> None:
        """Mark the call as closing. Idempotent; nothing new starts afterwards."""
        self._closing = True

    def begin_hangup(self) -> None:
        """Mark a hang-up as started. Idempotent."""
        self._hangup_pending = True

    def release_greeting_lock(self) -> None:
        """Release the greeting lock early (it is released by the greeting's ``response.done``)."""
        self._greeting_lock = False
        self._greeting_pending = False

    def note_user_spoke(self) -> None:
        """Record that the caller said something real (e.g. a barge-in the gate allowed)."""
        self._user_has_spoken = True

    # ------------------------------------------------------------------ remote events

    def observe(self, event: RealtimeServerEvent) -> None:
        """Update the state from one server event. Events that do not matter are ignored.

        Never raises for an event that arrives out of order: it is recorded as an anomaly.
        """
        if isinstance(event, AudioDelta):  # the hot path first
            self._on_audio(event)
        elif isinstance(event, ResponseCreated):
            self._on_trigger(LifecycleTrigger.RESPONSE_CREATED, event.response_id)
        elif isinstance(event, ResponseDone):
            self._on_done(event)
        elif isinstance(event, OutputItemAdded):
            self._on_output_item(event)
        elif isinstance(event, RealtimeError):
            self._on_error(event)
        elif isinstance(event, (SessionCreated, SessionUpdated)):
            self._on_session(event)
        elif isinstance(event, AudioDone):
            if self.match(event.response_id) is ResponseMatch.ACTIVE:
                self._audio_complete = True
        elif isinstance(event, InputTranscriptionCompleted) and event.transcript.strip():
            self._user_has_spoken = True

    def _adopt_early_output(self, response_id: str) -> None:
        """Output of a response never announced while our create is in flight: it is ours.

        Its ``response.created`` is late (reordered) or lost; the first output stands in for it,
        and the real one, when it comes, is a duplicate.
        """
        if (
            self._phase is ResponsePhase.CREATE_REQUESTED
            and self.match(response_id) is ResponseMatch.OTHER
        ):
            self._anomaly("output_before_response_created")
            self._on_trigger(LifecycleTrigger.RESPONSE_CREATED, response_id)

    def _on_audio(self, event: AudioDelta) -> None:
        self._adopt_early_output(event.response_id)
        if self.match(event.response_id) is not ResponseMatch.ACTIVE:
            self._counts["late_deltas"] += 1  # of a finished or unknown response: never played
            return
        item = self._items.get(event.item_id)
        if item is None:
            # The output item event was lost: adopt the item so truncation still has a bound.
            self._anomaly("audio_for_unannounced_item")
            item = self._start_item(event.item_id, event.response_id)
        if self._phase is ResponsePhase.CANCEL_REQUESTED:
            self._counts["late_deltas"] += 1  # generated before the cancel landed; not played
        ms = event.num_bytes / self._audio_format.bytes_per_ms
        self._items[event.item_id] = dataclasses.replace(item, received_ms=item.received_ms + ms)

    def _on_output_item(self, event: OutputItemAdded) -> None:
        if event.item_type != "message" or event.role not in (None, "assistant"):
            return
        self._adopt_early_output(event.response_id)
        if event.item_id in self._items:
            self._anomaly("duplicate_output_item")
        elif self.match(event.response_id) is not ResponseMatch.ACTIVE:
            self._anomaly("output_item_of_inactive_response")
        else:
            self._start_item(event.item_id, event.response_id)

    def _start_item(self, item_id: str, response_id: str) -> AssistantItem:
        item = AssistantItem(item_id=item_id, response_id=response_id)
        self._items[item_id] = item
        self._items.move_to_end(item_id)
        while len(self._items) > self._config.finished_responses:
            self._items.popitem(last=False)
        self._current_item_id = item_id
        return item

    def _on_done(self, event: ResponseDone) -> None:
        self._on_trigger(LifecycleTrigger.RESPONSE_DONE, event.response_id, status=event.status)

    def _on_error(self, event: RealtimeError) -> None:
        if self._phase is ResponsePhase.CREATE_REQUESTED and (
            event.code == CREATE_REJECTED_CODE
            or (
                self._create_event_id is not None and event.client_event_id == self._create_event_id
            )
        ):
            self._on_trigger(LifecycleTrigger.CREATE_REJECTED, None)
        elif event.code == CANCEL_REJECTED_CODE:
            self._on_trigger(LifecycleTrigger.CANCEL_REJECTED, None)
        elif event.code == CREATE_REJECTED_CODE:
            self._on_trigger(LifecycleTrigger.CREATE_REJECTED, None)

    def _on_session(self, event: SessionCreated | SessionUpdated) -> None:
        if event.turn_detection_present:
            detection = event.turn_detection
            if detection is None:
                self._interrupt_response = False
                self._create_response = False
            else:
                self._interrupt_response = detection.interrupt_response
                self._create_response = detection.create_response
        if event.output_format is not None:
            self._audio_format = event.output_format

    def _on_trigger(
        self, trigger: LifecycleTrigger, response_id: str | None, *, status: str = ""
    ) -> None:
        match = ResponseMatch.OTHER if response_id is None else self.match(response_id)
        if trigger in (LifecycleTrigger.CREATE_REJECTED, LifecycleTrigger.CANCEL_REJECTED):
            match = ResponseMatch.ACTIVE
        before = self._phase
        after = TRANSITIONS[before, trigger, match]
        assert isinstance(after, ResponsePhase), "remote triggers are never illegal"

        if trigger is LifecycleTrigger.RESPONSE_CREATED:
            if match is not ResponseMatch.OTHER:
                self._anomaly("duplicate_response_created")
                return
            if before in _BUSY and self._active_response_id is not None:
                # A new response while ours was active: its response.done was lost.
                self._anomaly("response_created_while_active")
                self._finish(self._active_response_id, "unknown")
            self._active_response_id = response_id
            self._audio_complete = False
            self._counts["responses_created"] += 1
            if self._greeting_pending and self._greeting_response_id is None:
                self._greeting_response_id = response_id
        elif trigger is LifecycleTrigger.RESPONSE_DONE:
            if after is before:
                if match is ResponseMatch.FINISHED:
                    self._anomaly("duplicate_response_done")
                else:
                    self._anomaly("response_done_for_unknown_response")
                return
            if before is ResponsePhase.CREATE_REQUESTED:
                self._anomaly("response_created_lost")
                if self._greeting_pending and self._greeting_response_id is None:
                    self._greeting_response_id = response_id
            assert response_id is not None
            self._finish(response_id, status)
            self._counts["responses_done"] += 1
        elif trigger is LifecycleTrigger.CREATE_REJECTED:
            if after is before:
                self._anomaly("create_rejected_unexpectedly")
                return
            self._create_event_id = None
            if self._greeting_pending and self._greeting_response_id is None:
                self.release_greeting_lock()
        elif trigger is LifecycleTrigger.CANCEL_REJECTED:
            if after is before:
                self._anomaly("cancel_rejected_unexpectedly")
                return
            if self._active_response_id is not None:
                self._finish(self._active_response_id, "unknown")
        self._phase = after
        if after is not ResponsePhase.CREATE_REQUESTED:
            self._create_event_id = None
        if after is ResponsePhase.DONE:
            self._active_response_id = None
        logger.debug(
            "response phase %s -> %s on %s",
            before.value,
            after.value,
            trigger.value,
            extra=self._log_extra(response_id=response_id),
        )

    def _finish(self, response_id: str, status: str) -> None:
        self._finished[response_id] = status
        self._finished.move_to_end(response_id)
        while len(self._finished) > self._config.finished_responses:
            self._finished.popitem(last=False)  # oldest first
        if response_id == self._greeting_response_id:
            self._greeting_response_id = None
            self.release_greeting_lock()

    # ------------------------------------------------------------------ helpers

    def _apply(self, trigger: LifecycleTrigger, match: ResponseMatch) -> None:
        after = TRANSITIONS[self._phase, trigger, match]
        if isinstance(after, str):
            raise StateTransitionError(state=self._describe(), event=trigger.value, detail=after)
        self._phase = after

    def _describe(self) -> str:
        active = self._active_response_id if self._phase in _BUSY else None
        return f"{self._phase.value}" + (f"({active})" if active else "")

    def _anomaly(self, kind: str) -> None:
        self._anomalies[kind] += 1
        logger.info("peer event out of order: %s", kind, extra=self._log_extra(anomaly=kind))

    def _log_extra(self, **fields: object) -> dict[str, object]:
        return {"call_sid": self.call_sid, "stream_sid": self.stream_sid, **fields}
