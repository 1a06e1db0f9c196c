"""CallState: the one source of truth about a call, derived from observed events.

:class:`CallState` is fed every server event the bridge receives (:meth:`CallState.observe`) and
told about every lifecycle message the bridge sends (:meth:`CallState.create_sent`,
:meth:`CallState.cancel_sent`, :meth:`CallState.truncate_sent`). The guards read it; nobody keeps a
parallel flag.

The response lifecycle is a table (:data:`~voiceguard.core.lifecycle.TRANSITIONS`) from
``(phase, trigger, which response)`` to the next phase, in the style of h11's state machine (see
:mod:`voiceguard.core.lifecycle`). Triggers that come from the peer never
raise: a duplicate, late or unknown ``response.done`` is an expected race, recorded as an anomaly
and counted. Triggers that the caller reports (a create or cancel it sent) raise
:class:`~voiceguard.errors.StateTransitionError` when the table forbids them, and leave the state
unchanged: the guard would have refused that send.

The state of one call has three parts: the response lifecycle with the finished responses and the
greeting lock, the assistant audio items (received, sent, heard, truncated), and the call's own
flags and session settings, which :class:`CallState` keeps itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import final

from typing_extensions import assert_never

from voiceguard.config import StateConfig
from voiceguard.core._assistant_items import AssistantItem, AssistantItems
from voiceguard.core._responses import ResponseLifecycle
from voiceguard.core.lifecycle import (  # noqa: F401 - the error codes: their old import path
    ACTIVE_PHASES,
    CANCEL_REJECTED_CODE,
    CREATE_REJECTED_CODE,
    TRANSITIONS,
    LifecycleTrigger,
    ResponseMatch,
    ResponsePhase,
)
from voiceguard.errors import StateTransitionError
from voiceguard.protocol.realtime import (
    PCMU,
    AudioDelta,
    AudioDone,
    AudioFormat,
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    InputAudioCleared,
    InputAudioCommitted,
    InputAudioTimeoutTriggered,
    InputTranscriptionCompleted,
    InputTranscriptionDelta,
    InputTranscriptionFailed,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemTruncated,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputItemAdded,
    OutputItemDone,
    RateLimitsUpdated,
    RealtimeError,
    RealtimeServerEvent,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptDelta,
    TranscriptDone,
    UnknownEvent,
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
        "_anomalies",
        "_audio_format",
        "_closing",
        "_config",
        "_counts",
        "_create_response",
        "_hangup_pending",
        "_interrupt_response",
        "_items",
        "_last_cancel_at",
        "_last_create_at",
        "_responses",
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
        self._counts: Counter[str] = Counter()
        self._anomalies: Counter[str] = Counter()
        self._responses = ResponseLifecycle(
            self._config.finished_responses,
            counts=self._counts,
            anomaly=self._anomaly,
            log_extra=self._log_extra,
        )
        self._items = AssistantItems(
            self._config.finished_responses,
            responses=self._responses,
            counts=self._counts,
            anomaly=self._anomaly,
        )
        self._last_cancel_at: float | None = None
        self._last_create_at: float | None = None
        # The server's defaults until session.created / session.updated say otherwise.
        self._interrupt_response = True
        self._create_response = True
        self._audio_format: AudioFormat = PCMU
        self._closing = False
        self._hangup_pending = False
        self._user_has_spoken = False

    # ------------------------------------------------------------------ read-only facts

    @property
    def phase(self) -> ResponsePhase:
        """The current :class:`ResponsePhase`."""
        return self._responses.phase

    @property
    def active_response_id(self) -> str | None:
        """The id of the active response (created or being cancelled), else ``None``."""
        responses = self._responses
        return responses.active_id if responses.phase in ACTIVE_PHASES else None

    @property
    def last_response_id(self) -> str | None:
        """The id of the most recent response, active or finished."""
        return self._responses.last_response_id

    @property
    def response_active(self) -> bool:
        """True while a response is created and not done (including while a cancel is in flight)."""
        return self._responses.phase in ACTIVE_PHASES

    @property
    def audio_complete(self) -> bool:
        """True once the active response has generated all its audio (``output_audio.done``).

        Its ``response.done`` is then on the way; cancelling it would only race that event.
        """
        return self._responses.audio_complete and self._responses.phase in ACTIVE_PHASES

    @property
    def create_in_flight(self) -> bool:
        """True from the moment a ``response.create`` is sent until its response is created."""
        return self._responses.phase is ResponsePhase.CREATE_REQUESTED

    @property
    def cancel_in_flight(self) -> bool:
        """True from the moment a ``response.cancel`` is sent until the response is done."""
        return self._responses.phase is ResponsePhase.CANCEL_REQUESTED

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
        return self._responses.greeting.locked

    @property
    def user_has_spoken(self) -> bool:
        """True once the caller has been heard saying something real."""
        return self._user_has_spoken

    @property
    def current_item(self) -> AssistantItem | None:
        """The assistant audio item most recently started, if any."""
        return self._items.current

    @property
    def audio_playing(self) -> bool:
        """True while audio of the current item was handed to the phone but not yet heard."""
        return self._items.playing

    def item(self, item_id: str) -> AssistantItem | None:
        """Return what is known about the assistant item *item_id* (recent items only)."""
        return self._items.get(item_id)

    def is_finished(self, response_id: str) -> bool:
        """True if *response_id* is a finished response still remembered."""
        return self._responses.is_finished(response_id)

    def finished_status(self, response_id: str) -> str | None:
        """The final status (``completed``, ``cancelled``, ...) of a remembered response."""
        return self._responses.finished_status(response_id)

    def should_play(self, response_id: str) -> bool:
        """True if audio of *response_id* may go to the phone.

        Audio of a response being cancelled, already finished, or never seen is dropped
        (invariant 6 of the architecture page).
        """
        responses = self._responses
        return responses.phase is ResponsePhase.CREATED and response_id == responses.active_id

    def truncate_point(self, item_id: str | None = None) -> int | None:
        """The ``audio_end_ms`` to truncate an item to: heard audio, clamped to received audio.

        Args:
            item_id: The item; the current assistant item when omitted.

        Returns:
            Whole milliseconds, rounded down, or ``None`` when the item is unknown.
        """
        return self._items.truncate_point(item_id)

    def match(self, response_id: str | None) -> ResponseMatch:
        """Classify *response_id* against the state (``None`` means "the active one")."""
        return self._responses.match(response_id)

    def statistics(self) -> CallStateStatistics:
        """Return an immutable snapshot of the counters."""
        return CallStateStatistics(
            phase=self._responses.phase,
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
            f"<CallState phase={self._responses.phase.value} active={self.active_response_id!r} "
            f"closing={self._closing} hangup_pending={self._hangup_pending} "
            f"greeting_lock={self._responses.greeting.locked}>"
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
                state=self._responses.describe(),
                event=LifecycleTrigger.CREATE_SENT.value,
                detail="the call is closing" if self._closing else "a hang-up is pending",
            )
        self._responses.create_sent(greeting=greeting, event_id=event_id)
        self._last_create_at = now
        self._counts["creates_sent"] += 1

    def cancel_sent(self, *, now: float, response_id: str | None = None) -> None:
        """Record that a ``response.cancel`` was sent for the active response.

        Raises:
            StateTransitionError: If no response is active, a cancel is already in flight, or
                *response_id* is not the active response. The state is unchanged.
        """
        self._responses.apply(LifecycleTrigger.CANCEL_SENT, self.match(response_id))
        self._last_cancel_at = now
        self._counts["cancels_sent"] += 1

    def abandon_create(self, *, now: float) -> None:
        """Give up on a ``response.create`` whose ``response.created`` never came (a lost request).

        The create is no longer in flight, so a new one may be sent (a watchdog does this). If
        the lost response shows up after all, it is tracked like any response the server started.

        Raises:
            StateTransitionError: If no create is in flight. The state is unchanged.
        """
        self._responses.abandon_create()

    def truncate_sent(self, *, item_id: str, audio_end_ms: int) -> None:
        """Record that ``conversation.item.truncate`` was sent.

        Raises:
            StateTransitionError: If the item is unknown, or *audio_end_ms* exceeds the audio
                received for it (invariant 5 of the architecture page). The state is unchanged.
        """
        self._items.truncated(item_id, audio_end_ms)

    def record_playout(
        self, *, item_id: str, sent_ms: float | None = None, heard_ms: float | None = None
    ) -> None:
        """Record how much of an item's audio went to the phone and how much was heard.

        Positions only move forward; a smaller value than the known one is ignored. Unknown items
        are ignored (their audio may belong to a response that is already forgotten).
        """
        self._items.played(item_id, sent_ms, heard_ms)

    def playback_cleared(self) -> None:
        """Record that the phone's buffer was cleared (Twilio ``clear``): nothing plays any more.

        What was sent but not heard is no longer on its way to the caller, so the current item's
        sent position falls back to its heard position.
        """
        self._items.cleared()

    def begin_closing(self) -> None:
        """Mark the call as closing. Idempotent; nothing new starts afterwards."""
        self._closing = True

    def begin_hangup(self) -> None:
        """Mark a hang-up as started. Idempotent."""
        self._hangup_pending = True

    def release_greeting_lock(self) -> None:
        """Release the greeting lock early (it is released by the greeting's ``response.done``)."""
        self._responses.greeting.release()

    def note_user_spoke(self) -> None:
        """Record that the caller said something real (e.g. a barge-in the gate allowed)."""
        self._user_has_spoken = True

    # ------------------------------------------------------------------ remote events

    def observe(self, event: RealtimeServerEvent) -> None:
        """Update the state from one server event. Events that do not matter are ignored.

        Never raises for an event that arrives out of order: it is recorded as an anomaly.
        """
        match event:
            case AudioDelta():  # the hot path first
                self._items.audio(event, self._audio_format)
            case ResponseCreated():
                self._responses.remote(LifecycleTrigger.RESPONSE_CREATED, event.response_id)
            case ResponseDone():
                self._responses.remote(
                    LifecycleTrigger.RESPONSE_DONE, event.response_id, status=event.status
                )
            case OutputItemAdded():
                self._items.output_item(event)
            case RealtimeError():
                self._responses.error(event)
            case SessionCreated() | SessionUpdated():
                self._on_session(event)
            case AudioDone():
                self._responses.audio_done(event.response_id)
            case InputTranscriptionCompleted():
                if event.transcript.strip():
                    self._user_has_spoken = True
            case (
                SpeechStarted()
                | SpeechStopped()
                | InputAudioCommitted()
                | InputAudioCleared()
                | InputAudioTimeoutTriggered()
                | ItemAdded()
                | ItemDone()
                | ItemTruncated()
                | ItemDeleted()
                | InputTranscriptionDelta()
                | InputTranscriptionFailed()
                | OutputItemDone()
                | ContentPartAdded()
                | ContentPartDone()
                | TranscriptDelta()
                | TranscriptDone()
                | TextDelta()
                | TextDone()
                | FunctionCallArgumentsDelta()
                | FunctionCallArgumentsDone()
                | RateLimitsUpdated()
                | OutputAudioBufferStarted()
                | OutputAudioBufferStopped()
                | OutputAudioBufferCleared()
                | UnknownEvent()
            ):
                pass  # nothing the call state keeps
            case _:
                assert_never(event)

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

    # ------------------------------------------------------------------ helpers

    def _anomaly(self, kind: str) -> None:
        self._anomalies[kind] += 1
        logger.info("peer event out of order: %s", kind, extra=self._log_extra(anomaly=kind))

    def _log_extra(self, **fields: object) -> dict[str, object]:
        return {"call_sid": self.call_sid, "stream_sid": self.stream_sid, **fields}
