"""The caller's side of the turn engine: each segment judged, and the barge-in acted on.

:class:`CallerTurns` is where the barge-in policy runs. For every caller segment the server's
VAD opens (``speech_started``), the calibration gate judges whether it is the caller; a real one
over the bot pauses the bot at once (the floor moves ``BOT -> PAUSED``), and is then either
confirmed (``PAUSED -> CALLER``: cancel, truncate to what was heard, drop the rest) or found false
(``PAUSED -> BOT``: the bot plays on from the heard position). A real caller turn is answered; an
echo or noise turn is never answered, and deleted. For a bot in between, a segment's events are
held until they may be shown: at once for an ordinary turn, at the confirmation for a barge-in,
never for echo and noise. The floor's moves come from
:data:`~voiceguard.core.floor.FLOOR_TRANSITIONS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Final, final

from voiceguard.config import TurnConfig
from voiceguard.core._barge import BargeIns
from voiceguard.core._deadlines import earliest
from voiceguard.core._phone import PhoneAudio
from voiceguard.core._rejudge import TranscriptJudge
from voiceguard.core._responder import Responder
from voiceguard.core._segments import Segment, Segments
from voiceguard.core.actions import Deliver, SendToModel, TurnAction
from voiceguard.core.floor import Floor, FloorTrigger
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreateRequest
from voiceguard.core.record import DecisionCounts, DecisionSink, Recorder
from voiceguard.core.state import CallState
from voiceguard.decisions import Decision, Reason
from voiceguard.protocol.realtime import (
    RealtimeServerEvent,
    SpeechStarted,
    SpeechStopped,
    item_delete,
)

__all__ = ("CallerTurns",)

logger = logging.getLogger("voiceguard.turns")

_TURN: Final = CreateRequest(label="turn")


@final
class CallerTurns:
    """The caller's segments of one call, judged and acted on.

    Args:
        config: The engine's configuration.
        state: The call's state.
        gate: The call's calibration gate.
        cancels: The call's cancel arbiter.
        phone: The engine's phone side (pause, resume, what was heard).
        responder: The engine's responses (a turn's answer).
        move: Moves the engine's floor by a trigger; returns the new floor.
        floor: The engine's floor now.
        answer_turns: Whether the engine answers real turns itself now.
        bot: A bot sits in between (its events are held and shown).
        on_decision: Receives the gate's judgements as acted on.

    Attributes:
        segments: The caller's segments and their judgements.
        barges: The barge-in being confirmed (and how many were found false).
        speaking: True between a ``speech_started`` and its ``speech_stopped``.
    """

    __slots__ = (
        "_answer_turns",
        "_bot",
        "_cancels",
        "_config",
        "_floor",
        "_gate",
        "_gate_record",
        "_listening",
        "_move",
        "_own_deletes",
        "_pending",
        "_phone",
        "_responder",
        "_state",
        "_watched",
        "barges",
        "segments",
        "speaking",
        "transcripts",
    )

    def __init__(
        self,
        config: TurnConfig,
        *,
        state: CallState,
        gate: CalibrationGate,
        cancels: CancelArbiter,
        phone: PhoneAudio,
        responder: Responder,
        move: Callable[[FloorTrigger], Floor],
        floor: Callable[[], Floor],
        answer_turns: Callable[[], bool],
        bot: bool,
        on_decision: DecisionSink | None,
    ) -> None:
        self._config = config
        self._state = state
        self._gate = gate
        self._cancels = cancels
        self._phone = phone
        self._responder = responder
        self._move = move
        self._floor = floor
        self._answer_turns = answer_turns
        self._bot = bot
        self._gate_record = Recorder(
            guard="calibration_gate",
            logger=logger,
            sink=on_decision,
            identity=lambda: (state.call_sid, state.stream_sid),
        )
        self.segments = Segments()
        self._pending: Segment | None = None  # the segment whose judgement the gate deferred
        self._watched: Segment | None = None  # a suppressed segment, watched for a late barge-in
        # The segment the bot paused for, so that the gate can listen past its echo; and since.
        self._listening: tuple[Segment, float] | None = None
        self._own_deletes: set[str] = set()
        # The bot's words, and turns taken for echo waiting for their own.
        self.transcripts = TranscriptJudge(config.backchannel)
        self.barges = BargeIns(
            config,
            state=state,
            gate=gate,
            cancels=cancels,
            phone=phone,
            move=move,
            record=self._gate_record,
            transcripts=self.transcripts,
            show=self._show,
            not_a_turn=self._not_a_turn,
            fields=self._fields,
        )
        self.speaking = False

    def statistics(self) -> DecisionCounts:
        """The gate's judgements of ``speech_started`` as the engine acted on them."""
        return self._gate_record.snapshot()

    def own_delete(self, item_id: str) -> bool:
        """True (once) for the ``conversation.item.deleted`` of a delete of the engine's own."""
        if item_id in self._own_deletes:
            self._own_deletes.discard(item_id)
            return True
        return False

    def _fields(self, now: float) -> dict[str, object]:
        """The call's fields of a log record."""
        return {"call_sid": self._state.call_sid, "stream_sid": self._state.stream_sid, "t": now}

    def _deliver(self, raw: object) -> list[TurnAction]:
        return [Deliver(event=raw)] if self._bot else []

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When a barge-in is to be confirmed, or the gate wants to judge again."""
        best = earliest(self._gate.next_deadline(), self.barges.next_deadline())
        return (
            earliest(best, self.transcripts.next_deadline()) if self.transcripts.waiting else best
        )

    def on_tick(self, now: float) -> list[TurnAction]:
        """Confirm a barge-in whose time came; judge a deferred segment again."""
        out = self.barges.on_tick(now)
        for segment in self.transcripts.expired(now):
            out += self._delete_echo(segment)  # no words came: the audio's judgement stands
        due = self._gate.next_deadline()
        if due is not None and now >= due:
            decision = self._gate.recheck(now)
            if self._pending is not None:
                out += self.judged(self._pending, decision, now)
        return out

    def late_barge_in(self, late: Decision, now: float) -> list[TurnAction]:
        """The gate found the caller's own speech inside a segment it had suppressed."""
        segment = self._watched
        self._gate_record.record(
            replace(late, item_id=segment.item_id if segment is not None else None), now
        )
        if not late.allowed or segment is None or not self._config.turn_control:
            return []
        return self._real(segment, now, speech_from_ms=self._gate.late_speech_from_ms())

    # ------------------------------------------------------------------ segments

    def speech_started(self, event: SpeechStarted, raw: object, now: float) -> list[TurnAction]:
        segment = self.segments.open(event.item_id, event.audio_start_ms)
        self._watched = None
        if self._listening is not None:  # still paused: the new segment's judgement settles it
            self._listening = (segment, self._listening[1])
        self.speaking = True
        out: list[TurnAction] = []
        if self._config.turn_control and self._bot:
            segment.held.append(raw)
        else:
            out = self._deliver(raw)
        self._move(FloorTrigger.SPEECH_STARTED)
        decision = self._gate.judge_speech_started(
            now, audio_start_ms=event.audio_start_ms, user_has_spoken=self._state.user_has_spoken
        )
        return out + self.judged(segment, decision, now)

    def speech_stopped(self, event: SpeechStopped, raw: object, now: float) -> list[TurnAction]:
        segment = self.segments.get(event.item_id)
        self.speaking = False
        out: list[TurnAction] = []
        settled = self._gate.speech_stopped(now)
        if settled is not None and segment is not None and self._pending is segment:
            out += self.judged(segment, settled, now)
        if segment is not None and self.barges.of(segment):
            out += self.barges.speech_ended(event, now)
        return out + self.segment_event(event.item_id, raw, now, commit=False)

    def judged(self, segment: Segment, decision: Decision, now: float) -> list[TurnAction]:
        self._gate_record.record(replace(decision, item_id=segment.item_id), now)
        if decision.deferred:
            self._pending = segment  # the gate asks again at its deadline (on_tick)
            if decision.reason is Reason.ECHO_UNCERTAIN and self._config.turn_control:
                return self._listen(segment, now)
            return []
        if self._pending is segment:
            self._pending = None
        if not self._config.turn_control:
            segment.real = decision.allowed  # observer mode: judged, not acted on
            if decision.allowed:
                self._state.note_user_spoke()
            return []
        if decision.allowed:
            return self._real(segment, now)
        segment.real = False  # echo or noise: not the caller, nor activity on the line
        self._watched = segment
        self._move(FloorTrigger.SPEECH_NOT_REAL)
        listening = self._listening
        if listening is not None and listening[0] is segment:
            self._listening = None
            self._move(FloorTrigger.ECHO_HEARD)  # the echo ended with the bot's audio
            return self._phone.resume(now)
        return []

    def _listen(self, segment: Segment, now: float) -> list[TurnAction]:
        """The gate cannot tell *segment* from the bot's echo: the bot pauses while it listens.

        The pause is a barge-in's (Twilio ``clear``, rewound to the heard position), so that the
        bot falls silent at once in either driver; if it was the echo, the bot plays on from
        where the caller stopped hearing it, nothing of it lost.
        """
        if self._listening is not None:
            return []  # already paused
        before = self._floor()
        if before is Floor.PAUSED or self._move(FloorTrigger.SPEECH_UNSURE) is not Floor.PAUSED:
            return []  # the bot is not talking, or is paused already for a barge-in
        self._listening = (segment, now)
        logger.info(
            "pausing the bot to listen: echo or caller?",
            extra=self._fields(now),
        )
        return self._phone.pause(now)

    def _real(
        self, segment: Segment, now: float, *, speech_from_ms: float | None = None
    ) -> list[TurnAction]:
        """The caller really speaks in *segment* (from *speech_from_ms* of its audio, when the
        segment began as echo or noise): stop the bot at once, or take the turn."""
        segment.real = True
        if self._watched is segment:
            self._watched = None
        self._state.note_user_spoke()
        self._responder.deadlines.caller_spoke()
        if self.barges.of(segment):
            return []  # the same segment again (a repeated speech_started): still confirming
        listening = self._listening
        listened = listening is not None and listening[0] is segment
        if listened:
            self._listening = None
        before = self._floor()
        if self._move(FloorTrigger.SPEECH_REAL) is Floor.PAUSED and (
            before is not Floor.PAUSED or listened
        ):
            since = listening[1] if listening and listened else None
            return self.barges.start(segment, now, since=since, speech_from_ms=speech_from_ms)
        return self._show(segment, now)

    def _show(self, segment: Segment, now: float) -> list[TurnAction]:
        """The segment is real and nothing waits for a confirmation: what was held goes, and a
        committed turn is answered."""
        out: list[TurnAction] = [Deliver(event=raw) for raw in segment.held] if self._bot else []
        segment.held.clear()
        if segment.committed:
            out += self._turn_committed(segment, now)
        return out

    def segment_event(
        self, item_id: str, raw: object, now: float, *, commit: bool
    ) -> list[TurnAction]:
        """``speech_stopped`` or ``committed``: shown, held or hidden with its segment."""
        if not self._config.turn_control:
            return self._deliver(raw)
        segment = self.segments.get(item_id)
        if segment is None:
            if not commit:
                return self._deliver(raw)
            # A turn whose start the engine never saw (its speech_started was lost, or came
            # before the engine): the caller said something, so it is answered.
            segment = self.segments.open(item_id, None)
            segment.real = True
        if commit:
            segment.committed = True
        if segment.real is None or self.barges.of(segment):
            if self._bot:
                segment.held.append(raw)
            return []
        if segment.real is False:
            if commit:
                return self._echo_turn(segment, raw, now)
            if self._bot:
                segment.held.append(raw)  # shown if the turn turns out to be the caller's
            return []
        out = self._deliver(raw)
        if commit:
            out += self._turn_committed(segment, now)
        return out

    def _echo_turn(self, segment: Segment, raw: object, now: float) -> list[TurnAction]:
        """A committed turn that was echo or noise: never answered, deleted by policy; when the
        session transcribes the caller, only once its words say it was not the caller."""
        wait = self._config.transcript_wait
        if wait is not None and self.transcripts.transcribing:
            if self._bot and raw is not None:
                segment.held.append(raw)  # shown with the rest if its words are the caller's
            self.transcripts.wait(segment, now + wait)
            return []
        return self._delete_echo(segment)

    def words(self, event: RealtimeServerEvent, raw: object, now: float) -> list[TurnAction]:
        """Any other event of the model; a transcript settles a short barge-in, or re-judges a
        turn taken for echo."""
        short = self.barges.words(event)
        if short is not None:
            if self._bot:
                short[0].segment.held.append(raw)
            return self.barges.read(short[0], short[1], now)
        judged = self.transcripts.event(event)
        if judged is None:
            return self._deliver(raw)
        segment, decision = judged
        if self._bot:
            segment.held.append(raw)
        if decision is not None:
            self._gate_record.record(decision, now)
            if decision.allowed:
                return self._real(segment, now)
        return self._delete_echo(segment)

    def _not_a_turn(self, segment: Segment, now: float, words_known: bool) -> list[TurnAction]:
        """A committed segment that was a blip or a backchannel, not a turn."""
        return self._delete_echo(segment) if words_known else self._echo_turn(segment, None, now)

    def _delete_echo(self, segment: Segment) -> list[TurnAction]:
        """Forget a committed turn of echo or noise, and delete it by policy."""
        segment.held.clear()
        if self._watched is segment:
            self._watched = None
        if not self._config.delete_echo_turns:
            return []
        self._own_deletes.add(segment.item_id)
        return [SendToModel(message=item_delete(segment.item_id))]

    def _turn_committed(self, segment: Segment, now: float) -> list[TurnAction]:
        """A real caller turn ended: answer it (when the engine answers turns)."""
        self._move(FloorTrigger.TURN_COMMITTED)
        self._responder.answers.turn_committed(segment.item_id)
        segment.committed = False  # answered once
        if not self._answer_turns() or self._state.server_creates:
            return []  # the bot answers its turns itself (or the server still does)
        return self._responder.create(_TURN, now)[1]
