"""The responses of a call: the lifecycle of the active one, the finished ones, the greeting.

:class:`ResponseLifecycle` is the part of :class:`~voiceguard.CallState` that runs the response
lifecycle (:data:`~voiceguard.core.lifecycle.TRANSITIONS`) on the triggers the call reports and
observes, remembers which responses finished and how, and holds the :class:`GreetingLock`.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import final

from voiceguard.core.lifecycle import (
    ACTIVE_PHASES,
    CANCEL_REJECTED_CODE,
    CREATE_REJECTED_CODE,
    TRANSITIONS,
    LifecycleTrigger,
    ResponseMatch,
    ResponsePhase,
)
from voiceguard.errors import StateTransitionError
from voiceguard.protocol.realtime import RealtimeError

__all__ = ("GreetingLock", "ResponseLifecycle")

logger = logging.getLogger("voiceguard.state")


@final
@dataclass(init=False, slots=True)
class GreetingLock:
    """The greeting holds the line from its ``response.create`` until its ``response.done``.

    Compared by value, like the other parts of a call's state.

    Attributes:
        locked: True while the greeting holds the line.
    """

    locked: bool
    _pending: bool
    _response_id: str | None

    def __init__(self) -> None:
        self.locked = False
        self._pending = False
        self._response_id = None

    def begin(self) -> None:
        """The greeting's create was sent: the lock holds until its response is done."""
        self.locked = True
        self._pending = True

    def release(self) -> None:
        """Release the lock (early, or because the greeting is done)."""
        self.locked = False
        self._pending = False

    def adopt(self, response_id: str | None) -> None:
        """A response started for the pending greeting: it is the greeting."""
        if self._pending and self._response_id is None:
            self._response_id = response_id

    def unanswered(self) -> None:
        """The greeting's create will get no response (rejected, or given up): release."""
        if self._pending and self._response_id is None:
            self.release()

    def finished(self, response_id: str) -> None:
        """A response finished: if it was the greeting, release."""
        if response_id == self._response_id:
            self._response_id = None
            self.release()


@final
@dataclass(init=False, slots=True)
class ResponseLifecycle:
    """The response lifecycle of one call's default conversation.

    Args:
        limit: How many finished responses to remember (the oldest are forgotten first).
        counts: The call's counters; ``responses_created`` and ``responses_done`` are counted here.
        anomaly: Records a peer event that did not fit the lifecycle, by kind.
        log_extra: The call's fields for a log record, plus the given ones.

    Compared by value (the callbacks aside), like the other parts of a call's state.

    Attributes:
        phase: Where the lifecycle stands.
        active_id: The id of the latest response created, until it is done (whatever the phase).
        audio_complete: True once the latest response created has generated all its audio.
        greeting: The greeting lock.
    """

    phase: ResponsePhase
    active_id: str | None
    audio_complete: bool
    greeting: GreetingLock
    _finished: OrderedDict[str, str]  # response id -> final status
    _create_event_id: str | None
    _limit: int
    _counts: Counter[str]
    _anomaly: Callable[[str], None] = field(compare=False, repr=False)
    _log_extra: Callable[..., dict[str, object]] = field(compare=False, repr=False)

    def __init__(
        self,
        limit: int,
        *,
        counts: Counter[str],
        anomaly: Callable[[str], None],
        log_extra: Callable[..., dict[str, object]],
    ) -> None:
        self._limit = limit
        self._counts = counts
        self._anomaly = anomaly
        self._log_extra = log_extra
        self._finished = OrderedDict()
        self._create_event_id = None
        self.phase = ResponsePhase.NONE
        self.active_id = None
        self.audio_complete = False
        self.greeting = GreetingLock()

    # ------------------------------------------------------------------ reading

    def match(self, response_id: str | None) -> ResponseMatch:
        """Classify *response_id* (``None`` means "the active one"); see ``CallState.match``."""
        if response_id is None or (
            self.active_id is not None
            and response_id == self.active_id
            and self.phase in ACTIVE_PHASES
        ):
            return ResponseMatch.ACTIVE
        if response_id in self._finished:
            return ResponseMatch.FINISHED
        return ResponseMatch.OTHER

    @property
    def last_response_id(self) -> str | None:
        """The id of the most recent response, active or finished."""
        if self.active_id is not None:
            return self.active_id
        return next(reversed(self._finished), None)

    def finished_status(self, response_id: str) -> str | None:
        """The final status of a remembered finished response, else ``None``."""
        return self._finished.get(response_id)

    def is_finished(self, response_id: str) -> bool:
        """True if *response_id* is a finished response still remembered."""
        return response_id in self._finished

    def describe(self) -> str:
        """The phase, with the active response's id, for error messages."""
        active = self.active_id if self.phase in ACTIVE_PHASES else None
        return f"{self.phase.value}" + (f"({active})" if active else "")

    # ------------------------------------------------------------------ what the call sent

    def apply(self, trigger: LifecycleTrigger, match: ResponseMatch) -> None:
        """Move on a trigger the call reports.

        Raises:
            StateTransitionError: If the table forbids the move. The phase is unchanged.
        """
        after = TRANSITIONS[self.phase, trigger, match]
        if isinstance(after, str):
            raise StateTransitionError(state=self.describe(), event=trigger.value, detail=after)
        self.phase = after

    def create_sent(self, *, greeting: bool, event_id: str | None) -> None:
        """A ``response.create`` was sent (see ``CallState.create_sent``)."""
        self.apply(LifecycleTrigger.CREATE_SENT, ResponseMatch.ACTIVE)
        self._create_event_id = event_id
        if greeting:
            self.greeting.begin()

    def abandon_create(self) -> None:
        """The create in flight was given up (see ``CallState.abandon_create``)."""
        self.apply(LifecycleTrigger.CREATE_ABANDONED, ResponseMatch.ACTIVE)
        self._create_event_id = None
        self._anomaly("create_abandoned")
        self.greeting.unanswered()

    # ------------------------------------------------------------------ what the server sent

    def adopt_early_output(self, response_id: str) -> None:
        """Output of a response never announced while our create is in flight: it is ours.

        Its ``response.created`` is late (reordered) or lost; the first output stands in for it,
        and the real one, when it comes, is a duplicate.
        """
        if (
            self.phase is ResponsePhase.CREATE_REQUESTED
            and self.match(response_id) is ResponseMatch.OTHER
        ):
            self._anomaly("output_before_response_created")
            self.remote(LifecycleTrigger.RESPONSE_CREATED, response_id)

    def audio_done(self, response_id: str | None) -> None:
        """``response.output_audio.done``: the active response has generated all its audio."""
        if self.match(response_id) is ResponseMatch.ACTIVE:
            self.audio_complete = True

    def error(self, event: RealtimeError) -> None:
        """An ``error`` that may reject our create or cancel."""
        if self.phase is ResponsePhase.CREATE_REQUESTED and (
            event.code == CREATE_REJECTED_CODE
            or (
                self._create_event_id is not None and event.client_event_id == self._create_event_id
            )
        ):
            self.remote(LifecycleTrigger.CREATE_REJECTED, None)
        elif event.code == CANCEL_REJECTED_CODE:
            self.remote(LifecycleTrigger.CANCEL_REJECTED, None)
        elif event.code == CREATE_REJECTED_CODE:
            self.remote(LifecycleTrigger.CREATE_REJECTED, None)

    def remote(
        self, trigger: LifecycleTrigger, response_id: str | None, *, status: str = ""
    ) -> None:
        """Move on a trigger from the server; never raises (anomalies keep the phase)."""
        match = ResponseMatch.OTHER if response_id is None else self.match(response_id)
        if trigger in (LifecycleTrigger.CREATE_REJECTED, LifecycleTrigger.CANCEL_REJECTED):
            match = ResponseMatch.ACTIVE
        before = self.phase
        after = TRANSITIONS[before, trigger, match]
        assert isinstance(after, ResponsePhase), "remote triggers are never illegal"

        if trigger is LifecycleTrigger.RESPONSE_CREATED:
            if match is not ResponseMatch.OTHER:
                self._anomaly("duplicate_response_created")
                return
            if before in ACTIVE_PHASES and self.active_id is not None:
                # A new response while ours was active: its response.done was lost.
                self._anomaly("response_created_while_active")
                self._finish(self.active_id, "unknown")
            self.active_id = response_id
            self.audio_complete = False
            self._counts["responses_created"] += 1
            self.greeting.adopt(response_id)
        elif trigger is LifecycleTrigger.RESPONSE_DONE:
            if after is before:
                if match is ResponseMatch.FINISHED:
                    self._anomaly("duplicate_response_done")
                else:
                    self._anomaly("response_done_for_unknown_response")
                return
            if before is ResponsePhase.CREATE_REQUESTED:
                self._anomaly("response_created_lost")
                self.greeting.adopt(response_id)
            assert response_id is not None
            self._finish(response_id, status)
            self._counts["responses_done"] += 1
        elif trigger is LifecycleTrigger.CREATE_REJECTED:
            if after is before:
                self._anomaly("create_rejected_unexpectedly")
                return
            self._create_event_id = None
            self.greeting.unanswered()
        elif trigger is LifecycleTrigger.CANCEL_REJECTED:
            if after is before:
                self._anomaly("cancel_rejected_unexpectedly")
                return
            if self.active_id is not None:
                self._finish(self.active_id, "unknown")
        self.phase = after
        if after is not ResponsePhase.CREATE_REQUESTED:
            self._create_event_id = None
        if after is ResponsePhase.DONE:
            self.active_id = None
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
        while len(self._finished) > self._limit:
            self._finished.popitem(last=False)  # oldest first
        self.greeting.finished(response_id)
