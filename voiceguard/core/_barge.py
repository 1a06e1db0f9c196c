"""A barge-in over the bot, from its pause to its end.

The gate allowed the caller's speech while the bot talked, so the bot is paused at once (Twilio
``clear``, rewound to the heard position). :class:`BargeIns` then ends the barge-in one of three
ways:

* **confirmed** (``PAUSED -> CALLER``): the caller kept talking past
  :attr:`~voiceguard.TurnConfig.confirm_barge_in`, or their speech was longer than a
  backchannel: ``response.cancel``, ``conversation.item.truncate`` to what was heard, the rest of
  the answer dropped, and the caller's segment shown and answered;
* **false** (``PAUSED -> BOT``): the speech was shorter than
  :attr:`~voiceguard.TurnConfig.min_barge_in_speech` (a cough, a click): the bot plays on;
* **a backchannel** (``PAUSED -> BOT``): the speech ended short
  (:attr:`~voiceguard.BackchannelConfig.max_duration`) and its transcript has only
  acknowledgements ("uh-huh", "okay", "כן"): the bot plays on, with
  :attr:`~voiceguard.Reason.BACKCHANNEL`. Words that are not ("stop", "wait") confirm it, and so
  does a short segment whose words cannot be read (no transcription; unless
  :attr:`~voiceguard.BackchannelConfig.without_words`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, final

from voiceguard.config import TurnConfig
from voiceguard.core._phone import PhoneAudio
from voiceguard.core._rejudge import TranscriptJudge
from voiceguard.core._segments import Segment
from voiceguard.core.actions import SendToModel, TurnAction
from voiceguard.core.floor import Floor, FloorTrigger
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.record import Recorder
from voiceguard.core.state import CallState
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.protocol.realtime import (
    InputTranscriptionCompleted,
    RealtimeServerEvent,
    SpeechStopped,
    item_truncate,
    response_cancel,
)

__all__ = ("BargeIn", "BargeIns")

logger = logging.getLogger("voiceguard.turns")

#: How often a postponed confirmation looks again.
_RECHECK: Final = 0.04
#: How long after the VAD's silence duration its speech_stopped may still come, in ms.
_VAD_SLACK_MS: Final = 300

#: What becomes of a segment that was not the caller taking the turn: ``(segment, now,
#: words_known)``; *words_known*: its transcript was read already.
NotATurn = Callable[[Segment, float, bool], list[TurnAction]]


@dataclass(slots=True)
class BargeIn:
    """A barge-in the gate allowed, waiting to be confirmed or found false."""

    segment: Segment
    response_id: str | None  # the response the caller talked over
    confirm_at: float
    decide_by: float  # the latest moment to decide, if the VAD never says the speech ended
    words_by: float | None = None  # a short segment waits for its words until then
    quiet: bool = False  # the caller's speech was seen to end
    #: Where the caller's speech began (audio ms), when the segment began as echo or noise
    #: (a late barge-in): the speech is measured from there, and the bot's echoed words in its
    #: transcript are not the caller's.
    speech_from_ms: float | None = None


@final
class BargeIns:
    """The barge-in of one call, at most one at a time.

    Args:
        config: The engine's configuration.
        state: The call's state.
        gate: The call's calibration gate (is the caller quiet?).
        cancels: The call's cancel arbiter.
        phone: The engine's phone side.
        move: Moves the engine's floor.
        record: Records the judgements of the caller's speech.
        transcripts: The bot's words and the acknowledgements.
        show: Shows a real segment (its held events) and answers it if committed.
        not_a_turn: What becomes of a committed segment that was not a turn.
        fields: The call's fields of a log record.

    Attributes:
        current: The barge-in being confirmed, or ``None``.
        false_interruptions: Barge-ins found false or backchannels (the bot resumed).
        silence_ms: The VAD's silence duration (ms), as the session reports it.
        padding_ms: The VAD's prefix padding (ms).
    """

    __slots__ = (
        "_cancels",
        "_config",
        "_fields",
        "_gate",
        "_move",
        "_not_a_turn",
        "_phone",
        "_record",
        "_show",
        "_state",
        "_transcripts",
        "current",
        "false_interruptions",
        "padding_ms",
        "silence_ms",
    )

    def __init__(
        self,
        config: TurnConfig,
        *,
        state: CallState,
        gate: CalibrationGate,
        cancels: CancelArbiter,
        phone: PhoneAudio,
        move: Callable[[FloorTrigger], Floor],
        record: Recorder,
        transcripts: TranscriptJudge,
        show: Callable[[Segment, float], list[TurnAction]],
        not_a_turn: NotATurn,
        fields: Callable[[float], dict[str, object]],
    ) -> None:
        self._config = config
        self._state = state
        self._gate = gate
        self._cancels = cancels
        self._phone = phone
        self._move = move
        self._record = record
        self._transcripts = transcripts
        self._show = show
        self._not_a_turn = not_a_turn
        self._fields = fields
        self.current: BargeIn | None = None
        self.false_interruptions = 0
        self.silence_ms = config.silence_duration_ms
        self.padding_ms = config.calibration.prefix_padding_ms

    def of(self, segment: Segment) -> bool:
        """True if *segment* is the barge-in being confirmed."""
        return self.current is not None and self.current.segment is segment

    def next_deadline(self) -> float | None:
        """When the barge-in is to be decided."""
        return self.current.confirm_at if self.current is not None else None

    def start(
        self,
        segment: Segment,
        now: float,
        *,
        since: float | None,
        speech_from_ms: float | None = None,
    ) -> list[TurnAction]:
        """A barge-in over the bot: pause it on the phone now (unless it paused *since* then to
        listen), confirm it later. *speech_from_ms*: see :attr:`BargeIn.speech_from_ms`."""
        out = self._phone.pause(now) if since is None else []
        item = self._state.current_item
        confirm_at = max(now, (now if since is None else since) + self._config.confirm_barge_in)
        self.current = BargeIn(
            segment=segment,
            response_id=item.response_id if item is not None else self._state.active_response_id,
            confirm_at=confirm_at,
            # The VAD says the speech ended silence_ms after it did: a little after that.
            decide_by=max(confirm_at, now + (self.silence_ms + _VAD_SLACK_MS) / 1000),
            speech_from_ms=speech_from_ms,
        )
        return out

    def on_tick(self, now: float) -> list[TurnAction]:
        """Decide the barge-in whose time came."""
        barge = self.current
        if barge is None or now < barge.confirm_at:
            return []
        if barge.words_by is not None:
            return self.confirm(barge, now)  # no words in time: it may have been "stop"
        if self._gate.caller_quiet():
            if not barge.quiet and self._may_be_backchannel():
                # The speech ended: its speech_stopped comes silence_ms after that, and says
                # whether it was short enough to be a backchannel.
                barge.quiet = True
                barge.decide_by = max(
                    barge.decide_by, now + (self.silence_ms + _VAD_SLACK_MS) / 1000
                )
            if now < barge.decide_by:
                # A short answer, or a cough? The VAD's speech_stopped is on its way.
                barge.confirm_at = min(barge.decide_by, now + _RECHECK)
                return []
        return self.confirm(barge, now)

    def _may_be_backchannel(self) -> bool:
        backchannel = self._config.backchannel
        return backchannel.enabled and (self._transcripts.transcribing or backchannel.without_words)

    def speech_ended(self, event: SpeechStopped, now: float) -> list[TurnAction]:
        """The speech of the barge-in ended before its confirmation: a blip, a backchannel, or
        a short barge-in?"""
        barge = self.current
        assert barge is not None
        start = barge.segment.audio_start_ms
        ended = event.audio_end_ms - self.silence_ms  # the VAD's segment ends with its silence
        if barge.speech_from_ms is not None:
            # A late barge-in: the segment began as echo or noise, the caller's speech where the
            # gate found it. That may be after their first word, so it is never "too short".
            speech_ms = max(0, round(ended - barge.speech_from_ms))
        elif start is None:
            return self.confirm(barge, now)
        else:
            speech_ms = round(ended - (start + self.padding_ms))  # after the prefix padding
            if speech_ms < 1000 * self._config.min_barge_in_speech:
                return self._resume(barge, now, None)
        backchannel = self._config.backchannel
        if not backchannel.enabled or speech_ms > 1000 * backchannel.max_duration:
            return self.confirm(barge, now)
        if self._transcripts.transcribing:
            barge.words_by = barge.confirm_at = now + backchannel.wait  # paused, for its words
            return []
        if backchannel.without_words:
            return self._resume(barge, now, f"{speech_ms} ms of speech, no transcript to read")
        return self.confirm(barge, now)  # it may have been "stop": no words, no guess

    def words(self, event: RealtimeServerEvent) -> tuple[BargeIn, str] | None:
        """The transcript of a short barge-in waiting for its words, if *event* is one."""
        barge = self.current
        if (
            barge is None
            or barge.words_by is None
            or not isinstance(event, InputTranscriptionCompleted)
            or event.item_id != barge.segment.item_id
        ):
            return None
        return barge, event.transcript

    def read(self, barge: BargeIn, transcript: str, now: float) -> list[TurnAction]:
        """A short barge-in's words: acknowledgements resume the bot, anything else stops it.
        In a segment that began as the bot's echo, the bot's own words are not the caller's."""
        if self._transcripts.acknowledgement(
            transcript, beside_bot=barge.speech_from_ms is not None
        ):
            return self._resume(barge, now, f"its words are an acknowledgement: {transcript!r}")
        self._record.record(
            Decision(
                action=Action.BARGE_IN,
                verdict=Verdict.ALLOW,
                reason=Reason.OK,
                item_id=barge.segment.item_id,
                detail=f"short, but its words are not an acknowledgement: {transcript!r}",
            ),
            now,
        )
        return self.confirm(barge, now)

    def _resume(self, barge: BargeIn, now: float, backchannel: str | None) -> list[TurnAction]:
        """Not the caller taking the turn (a blip; a *backchannel*, why): the bot plays on."""
        self.current = None
        self.false_interruptions += 1
        segment = barge.segment
        segment.real = False
        self._cancels.withdraw()
        self._move(FloorTrigger.SPEECH_TOO_SHORT)
        if backchannel is not None:
            self._record.record(
                Decision(
                    action=Action.BARGE_IN,
                    verdict=Verdict.SUPPRESS,
                    reason=Reason.BACKCHANNEL,
                    item_id=segment.item_id,
                    detail=backchannel,
                ),
                now,
            )
        what = "false interruption" if backchannel is None else "backchannel"
        logger.info("%s: resuming playout", what, extra=self._fields(now))
        out = self._phone.resume(now)
        if segment.committed:
            out += self._not_a_turn(segment, now, barge.words_by is not None)
        return out

    def confirm(self, barge: BargeIn, now: float) -> list[TurnAction]:
        """The caller kept talking: cancel, truncate to what was heard, drop the rest."""
        self.current = None
        self._move(FloorTrigger.BARGE_IN_CONFIRMED)
        out: list[TurnAction] = []
        cancel = self._cancels.request(now)
        if cancel.allowed:
            out.append(SendToModel(message=response_cancel(cancel.response_id)))
        item = self._state.current_item
        if item is not None and item.truncated_ms is None:
            self._phone.update_heard(now)
            point = self._state.truncate_point(item.item_id)
            if point is not None and point < int(item.received_ms):
                self._state.truncate_sent(item_id=item.item_id, audio_end_ms=point)
                out.append(SendToModel(message=item_truncate(item.item_id, point)))
        if barge.response_id is not None:
            out += self._phone.silence(barge.response_id, now)
        else:
            out += self._phone.resume(now)
        return out + self._show(barge.segment, now)
