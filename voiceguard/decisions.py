"""Decisions: what a guard answers, and why.

Every question a guard answers ("may this ``speech_started`` count as a barge-in?", "may I send
``response.cancel`` now?") comes back as a :class:`Decision` with a :class:`Verdict` and a
:class:`Reason`. Expected races are decisions, never exceptions. A reason's value is its name, so
logs, metric labels and documentation all spell it the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final

__all__ = ("Action", "CreateOrigin", "CreatePolicy", "Decision", "Reason", "Verdict")


@final
class Verdict(enum.Enum):
    """What to do with the action that was asked about."""

    #: Go ahead now.
    ALLOW = "ALLOW"
    #: Do not do it; it will not become valid by waiting (or waiting is not the policy).
    SUPPRESS = "SUPPRESS"
    #: Not now. The guard holds it and releases it when it becomes valid, or asks to be asked again.
    DEFER = "DEFER"


@final
class Action(enum.Enum):
    """The kind of action a decision is about."""

    #: A ``speech_started`` treated as the caller barging in.
    BARGE_IN = "BARGE_IN"
    #: A client ``response.cancel``.
    CANCEL = "CANCEL"
    #: A client ``response.create``.
    CREATE = "CREATE"
    #: A ``conversation.item.truncate``.
    TRUNCATE = "TRUNCATE"
    #: A call-scoped timer's callback.
    TIMER = "TIMER"
    #: A message a bot sends to the model, checked before it goes (the middleware).
    SEND = "SEND"


@final
class Reason(enum.Enum):
    """Why a guard decided what it did. The value of each member is its name."""

    # --- allowed ---
    #: Every condition holds.
    OK = "OK"
    #: A greeting forced through the greeting lock (the lock exists for it).
    FORCED_GREETING = "FORCED_GREETING"

    # --- response lifecycle (cancel and create) ---
    #: No response is known to be active (none created, or the last one is done).
    NO_ACTIVE_RESPONSE = "NO_ACTIVE_RESPONSE"
    #: The response asked about has already finished (its ``response.done`` arrived).
    RESPONSE_ALREADY_DONE = "RESPONSE_ALREADY_DONE"
    #: The response has generated all its audio (``response.output_audio.done`` arrived), so its
    #: ``response.done`` is on the way and a barge-in cancel would only race it. Clear the phone's
    #: buffer and truncate instead.
    AUDIO_COMPLETE = "AUDIO_COMPLETE"
    #: A ``response.cancel`` for this response is already in flight.
    CANCEL_ALREADY_SENT = "CANCEL_ALREADY_SENT"
    #: A cancel was sent less than the cooldown ago.
    COOLDOWN = "COOLDOWN"
    #: The session has ``interrupt_response`` on, so the server cancels at speech start by itself.
    SERVER_CANCELS = "SERVER_CANCELS"
    #: A response is active (created and not done).
    RESPONSE_ACTIVE = "RESPONSE_ACTIVE"
    #: A ``response.create`` was sent and its ``response.created`` has not arrived yet.
    CREATE_IN_FLIGHT = "CREATE_IN_FLIGHT"
    #: The bot's audio is still playing on the phone (``response.done`` is not the end of playback).
    AUDIO_PLAYING = "AUDIO_PLAYING"
    #: An equivalent automatic request is already waiting; this one is merged into it.
    COALESCED = "COALESCED"
    #: The deferred queue is full; the request is dropped rather than held without bound.
    QUEUE_FULL = "QUEUE_FULL"
    #: A deferred request waited longer than its time to live and was dropped as outdated.
    EXPIRED = "EXPIRED"
    #: A response to the caller's turn has started, so a create held for the same turn (a
    #: watchdog's, a retry) is no longer needed and is dropped.
    TURN_ANSWERED = "TURN_ANSWERED"
    #: The caller's turn already had its one re-send after its response was lost; a further
    #: create for it would only start a second answer. Never more than one re-send per turn.
    RETRIED_ONCE = "RETRIED_ONCE"

    # --- call lifecycle ---
    #: The call is closing; nothing new starts.
    CLOSING = "CLOSING"
    #: A hang-up has started; nothing new starts.
    HANGUP_PENDING = "HANGUP_PENDING"
    #: The greeting holds the line; nothing but the greeting may start.
    GREETING_LOCK = "GREETING_LOCK"
    #: The action belongs to another call (or an earlier generation of this one).
    STALE_CALL = "STALE_CALL"
    #: The call scope has already closed.
    SCOPE_CLOSED = "SCOPE_CLOSED"

    # --- barge-in (calibration gate) ---
    #: The line's noise floor is not known yet.
    NOT_CALIBRATED = "NOT_CALIBRATED"
    #: The energy heard is explained by the echo of the bot's own audio.
    ECHO_SUSPECTED = "ECHO_SUSPECTED"
    #: Line noise explains the energy heard, which is not clearly above the noise floor, or is a
    #: noise burst (a click, crackle, a handling thump) rather than speech.
    BELOW_NOISE_FLOOR = "BELOW_NOISE_FLOOR"
    #: The configuration requires the caller to have spoken once before a barge-in counts.
    USER_NOT_SPOKEN = "USER_NOT_SPOKEN"
    #: The speech has not lasted the configured minimum duration yet.
    TOO_SHORT = "TOO_SHORT"
    #: Caller and bot talk at once and the evidence is not conclusive yet; ask again shortly.
    DOUBLE_TALK = "DOUBLE_TALK"
    #: The echo path is not known yet and the audio cannot tell the caller from the bot's echo,
    #: so the bot pauses and the gate asks again shortly (an echo ends with the bot's audio, a
    #: caller goes on).
    ECHO_UNCERTAIN = "ECHO_UNCERTAIN"
    #: The transcript of a turn the audio took for echo or noise holds words that are not the
    #: bot's own, so it is the caller's turn after all, and it is answered.
    CALLER_WORDS = "CALLER_WORDS"
    #: A short acknowledgement such as "uh-huh" or "okay" while the bot talked, so the paused bot
    #: plays on.
    BACKCHANNEL = "BACKCHANNEL"

    # --- what a bot sends ---
    #: The message is malformed and the model would refuse it (``invalid_value``, a missing or
    #: mistyped field). It is not sent; the decision names the message, the field and the problem.
    MALFORMED = "MALFORMED"

    # --- truncation ---
    #: The truncate pointed past what the caller heard (or the model sent); it goes out lowered
    #: to that point, so the model keeps only what the caller heard and the server accepts it.
    CLAMPED_TO_HEARD = "CLAMPED_TO_HEARD"
    #: The truncate names an item with no audio received, so the server would refuse it.
    UNKNOWN_ITEM = "UNKNOWN_ITEM"
    #: The item was already truncated at or before this point, and a second truncate would only
    #: earn an error.
    ALREADY_TRUNCATED = "ALREADY_TRUNCATED"


@final
class CreateOrigin(enum.Enum):
    """Who wants a response (see :class:`~voiceguard.CreateRequest`)."""

    #: The bot's own logic asked for it (a turn end, a tool result, a greeting). Kept in order.
    EXPLICIT = "EXPLICIT"
    #: A retry or nudge (a watchdog, an idle prompt). Several waiting at once coalesce into one.
    AUTOMATIC = "AUTOMATIC"


@final
class CreatePolicy(enum.Enum):
    """What to do with a create that cannot be sent now."""

    #: Drop it.
    DROP = "DROP"
    #: Hold it until it can be sent (after ``response.done``, the greeting, ...), then send it.
    DEFER = "DEFER"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A guard's answer.

    Attributes:
        action: What the decision is about.
        verdict: Allow, suppress, or defer.
        reason: Why.
        response_id: The response the action applies to, when there is one (for an allowed
            cancel: the id to cancel).
        item_id: The conversation item the action applies to, when there is one.
        retry_at: For a deferral that asks to be asked again: the monotonic time to ask at.
        detail: A short human-readable elaboration for logs (never contains audio or secrets).
    """

    action: Action
    verdict: Verdict
    reason: Reason
    response_id: str | None = None
    item_id: str | None = None
    retry_at: float | None = None
    detail: str = ""

    @property
    def allowed(self) -> bool:
        """True if the verdict is :attr:`Verdict.ALLOW`."""
        return self.verdict is Verdict.ALLOW

    @property
    def suppressed(self) -> bool:
        """True if the verdict is :attr:`Verdict.SUPPRESS`."""
        return self.verdict is Verdict.SUPPRESS

    @property
    def deferred(self) -> bool:
        """True if the verdict is :attr:`Verdict.DEFER`."""
        return self.verdict is Verdict.DEFER

    def __bool__(self) -> bool:
        """A decision is truthy exactly when it allows the action."""
        return self.verdict is Verdict.ALLOW

    def __str__(self) -> str:
        parts = [f"{self.action.value} {self.verdict.value} {self.reason.value}"]
        if self.response_id is not None:
            parts.append(f"response_id={self.response_id}")
        if self.item_id is not None:
            parts.append(f"item_id={self.item_id}")
        if self.retry_at is not None:
            parts.append(f"retry_at={self.retry_at:.3f}")
        if self.detail:
            parts.append(f"({self.detail})")
        return " ".join(parts)
