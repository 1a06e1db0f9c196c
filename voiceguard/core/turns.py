"""TurnEngine: the one barge-in and turn policy of voiceguard, sans-IO.

Every way into voiceguard drives this engine: the reference media handler
(:class:`~voiceguard.BridgeCore` under :class:`~voiceguard.MediaHandler`) and the middleware around
an existing bot (:class:`~voiceguard.middleware.GuardedCall`). It owns the whole policy:

* each ``speech_started`` is judged by the :class:`~voiceguard.CalibrationGate` (echo and noise
  are not the caller);
* a real barge-in over the bot *pauses* it at once (Twilio ``clear``, the playout rewound to what
  the caller heard), then either is *confirmed* (the caller kept talking: ``response.cancel`` and
  ``conversation.item.truncate`` to the heard position) or found *false* (the speech stopped too
  soon: the bot plays on from the heard position);
* a real caller turn is answered (``response.create`` through the
  :class:`~voiceguard.ResponseCreateGuard`); an echo or noise turn is never answered, and deleted;
* a create whose response never starts is sent once more, once, whoever asks
  (:mod:`voiceguard.core._answers`);
* after ``end_call`` the goodbye plays out, then the call is hung up (a fallback hangs up if its
  mark never comes); the idle ladder and the call's time limits;
* audio of a cancelled, finished or talked-over response never plays.

Who holds the floor is a state machine whose moves are a table
(:data:`~voiceguard.core.floor.FLOOR_TRANSITIONS`); the engine's barge-in steps are the moves of
that table. The engine's timers are deadlines: :meth:`TurnEngine.next_deadline` says when to call
:meth:`TurnEngine.on_tick`. It does no I/O and never reads a clock: every input takes ``now``
and returns the :data:`~voiceguard.core.actions.TurnAction` list to carry out.

A bot in between (``bot=True``, the middleware) changes where things come from, not what is
decided: the model's events go to the bot (:class:`~voiceguard.core.actions.Deliver`, held back
while a segment is judged or a barge-in confirmed), the bot's messages are checked on their way
(:class:`~voiceguard.core.bot.BotSide`), and the audio the bot forwards to the phone goes through
the same playout (handed over at once, so only a pause changes its flow).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, final

from voiceguard.audio import PCMU, AudioFormat
from voiceguard.config import TurnConfig
from voiceguard.core._answers import Answers
from voiceguard.core._caller import CallerTurns
from voiceguard.core._deadlines import CallDeadlines, earliest
from voiceguard.core._phone import PhoneAudio
from voiceguard.core._responder import Responder
from voiceguard.core._segments import Segments
from voiceguard.core._session import turn_control_fix
from voiceguard.core.actions import Deliver, SendToModel, TurnAction
from voiceguard.core.floor import FLOOR_TRANSITIONS, Floor, FloorTrigger
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreateRequest, ResponseCreateGuard
from voiceguard.core.playout import PlayoutBuffer
from voiceguard.core.record import DecisionCounts, DecisionSink, TimerSink
from voiceguard.core.state import CallState
from voiceguard.decisions import Decision
from voiceguard.protocol.realtime import (
    AudioDelta,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    ItemDeleted,
    RealtimeServerEvent,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    response_cancel,
)

__all__ = ("TurnEngine",)

logger = logging.getLogger("voiceguard.turns")


@final
class TurnEngine:
    """The turns and barge-ins of one call.

    Args:
        config: The policy's settings.
        state: The call's state (one is made when omitted).
        on_decision: Receives every decision of the call's guards, in order (metrics, traces).
        on_timer: Told of each of the call's own timers as it fires (traces).
        bot: A bot sits between the engine and the model (the middleware): the model's events
            are delivered to it, and its own messages come through
            :class:`~voiceguard.core.bot.BotSide`.
        phone: The engine can send to the phone (Twilio ``clear``, the paced or forwarded
            audio and its marks). False for a bot whose phone socket is not watched: then a
            barge-in cannot pause the phone, and is acted on once confirmed.

    Attributes:
        state: The call's :class:`~voiceguard.CallState`.
        gate: Its :class:`~voiceguard.CalibrationGate`.
        cancels: Its :class:`~voiceguard.CancelArbiter`.
        creates: Its :class:`~voiceguard.ResponseCreateGuard`.

    .. versionadded:: 0.2.0
    """

    __slots__ = (
        "_answer_turns",
        "_bot",
        "_caller",
        "_config",
        "_floor",
        "_input_format",
        "_phone",
        "_responder",
        "_session_fixes",
        "_tool_running",
        "_was_busy",
        "cancels",
        "creates",
        "gate",
        "state",
    )

    def __init__(
        self,
        config: TurnConfig | None = None,
        *,
        state: CallState | None = None,
        on_decision: DecisionSink | None = None,
        on_timer: TimerSink | None = None,
        bot: bool = False,
        phone: bool = True,
    ) -> None:
        cfg = self._config = config if config is not None else TurnConfig()
        self.state = state if state is not None else CallState(config=cfg.state)
        self.gate = CalibrationGate(cfg.calibration)
        self.cancels = CancelArbiter(self.state, config=cfg.cancel, on_decision=on_decision)
        self.creates = ResponseCreateGuard(
            self.state, config=cfg.create, calibration=self.gate, on_decision=on_decision
        )
        self._phone = PhoneAudio(cfg, self.state, watched=phone)
        self._responder = Responder(cfg, self.state, self.creates, self.cancels, on_timer=on_timer)
        self._bot = bot
        self._answer_turns = cfg.answer_turns
        self._floor = Floor.LISTENING
        self._caller = CallerTurns(
            cfg,
            state=self.state,
            gate=self.gate,
            cancels=self.cancels,
            phone=self._phone,
            responder=self._responder,
            move=self._move,
            floor=lambda: self._floor,
            answer_turns=lambda: self.answer_turns,
            bot=bot,
            on_decision=on_decision,
        )
        self._session_fixes = 0
        self._tool_running = False
        self._was_busy = False
        self._input_format = PCMU

    # ------------------------------------------------------------------ facts

    @property
    def config(self) -> TurnConfig:
        """The engine's configuration."""
        return self._config

    @property
    def floor(self) -> Floor:
        """Who holds the floor now."""
        return self._floor

    @property
    def playout(self) -> PlayoutBuffer:
        """The call's :class:`~voiceguard.PlayoutBuffer`."""
        return self._phone.playout

    @property
    def answers(self) -> Answers:
        """The open request for a response and its re-send budget."""
        return self._responder.answers

    @property
    def deadlines(self) -> CallDeadlines:
        """The call's own timers (hang-up fallback, idle ladder, time limits)."""
        return self._responder.deadlines

    @property
    def stream_sid(self) -> str | None:
        """The Twilio stream, once it started."""
        return self._phone.stream_sid

    @property
    def hung_up(self) -> bool:
        """True once an :class:`~voiceguard.core.actions.EndCall` was returned."""
        return self.deadlines.ended

    @property
    def false_interruptions(self) -> int:
        """Barge-ins allowed, then found false (the speech stopped too soon); the bot resumed."""
        return self._caller.barges.false_interruptions

    @property
    def segments(self) -> Segments:
        """The caller's segments and their judgements."""
        return self._caller.segments

    @property
    def phone_watched(self) -> bool:
        """True when the engine can send to the phone (pause it, pace or forward the audio)."""
        return self._phone.watched

    @property
    def answer_turns(self) -> bool:
        """Whether the engine answers real caller turns itself."""
        return self._config.turn_control and self._answer_turns

    @answer_turns.setter
    def answer_turns(self, value: bool) -> None:
        self._answer_turns = value

    @property
    def input_format(self) -> AudioFormat:
        """The session's input audio format (G.711 mu-law until the session says otherwise)."""
        return self._input_format

    @property
    def caller_speaking(self) -> bool:
        """True between a ``speech_started`` and its ``speech_stopped``."""
        return self._caller.speaking

    def barge_in_statistics(self) -> DecisionCounts:
        """The gate's judgements of ``speech_started`` as the engine acted on them."""
        return self._caller.statistics()

    def judgement(self, item_id: str) -> bool | None:
        """Whether the caller segment *item_id* was real speech (None: not judged, or unknown)."""
        return self.segments.judgement(item_id)

    def bot_busy(self, now: float) -> bool:
        """True while the bot speaks: a response runs or is asked for, or its audio plays."""
        state = self.state
        return state.response_active or state.create_in_flight or self._phone.busy(now)

    # ------------------------------------------------------------------ the phone

    def watch_phone(self) -> None:
        """From now on the engine can send to the phone (the bot's phone socket is watched)."""
        self._phone.watch()

    def stream_started(self, *, call_sid: str | None, stream_sid: str, now: float) -> None:
        """Twilio's ``start``: the call's identity, and the time its limits count from."""
        self._phone.stream_sid = stream_sid
        self.state.call_sid = call_sid
        self.state.stream_sid = stream_sid
        self.deadlines.call_started(now)

    def caller_audio(self, frame: bytes, now: float) -> list[TurnAction]:
        """The caller's audio (8 kHz mu-law, whole 20 ms frames), as the phone sent it."""
        gate = self.gate
        for played in self._phone.clock.played(now):
            gate.push_outbound(played, now)  # the bot's audio as it plays: the echo reference
        gate.push_inbound(frame, now)
        late = gate.poll_barge_in(now)
        return [] if late is None else self._caller.late_barge_in(late, now)

    def mark_played(self, name: str, now: float) -> list[TurnAction] | None:
        """Twilio echoed the mark *name*; None if the mark is not the engine's (the bot's own)."""
        if not self._phone.mark_played(name):
            return None
        return self._settle(now)

    def stream_stopped(self, now: float) -> None:
        """Twilio's ``stop``: the call is over; nothing new starts."""
        self.state.begin_closing()
        self.creates.drop_pending(now)
        self._move(FloorTrigger.CALL_ENDED)

    def phone_audio(self, audio: bytes, now: float) -> list[TurnAction] | None:
        """The bot forwards *audio* (mu-law) to the phone (None: let it go as it is)."""
        out = self._phone.bot_audio(audio, now)
        return None if out is None else out + self._settle(now)

    def phone_mark(self, name: str, now: float) -> list[TurnAction]:
        """The bot sends its own mark: it keeps its place after the audio before it."""
        return self._phone.bot_mark(name, now)

    def phone_clear(self, now: float) -> list[TurnAction]:
        """The bot clears the phone."""
        return self._phone.bot_clear(now) + self._settle(now)

    def phone_cleared_unseen(self, now: float) -> None:
        """The bot's phone was cleared where the engine cannot see it (its truncate says so)."""
        self._phone.cleared_unseen(now)

    def update_heard(self, now: float) -> None:
        """Bring the current item's heard position up to date (the clock, when no mark tells)."""
        self._phone.update_heard(now)

    # ------------------------------------------------------------------ the model

    def model_event(
        self, event: RealtimeServerEvent, now: float, raw: object = None
    ) -> list[TurnAction]:
        """One event of the model (*raw*: what the bot should get, when a bot is in between)."""
        if isinstance(event, AudioDelta) and self._phone.repeated(event):
            return []
        self.state.observe(event)
        out: list[TurnAction]
        match event:
            case AudioDelta():
                out = self._audio(event, raw, now)
            case SpeechStarted():
                out = self._caller.speech_started(event, raw, now)
            case SpeechStopped():
                out = self._caller.speech_stopped(event, raw, now)
            case InputAudioCommitted():
                out = self._caller.segment_event(event.item_id, raw, now, commit=True)
            case ResponseCreated():
                self._responder.answered(now)
                out = self._deliver(raw)
            case FunctionCallArgumentsDone():
                if event.name in self._config.hangup_tools:
                    self._responder.begin_hang_up(now)
                else:
                    self._tool_running = True
                out = self._deliver(raw)
            case ResponseDone():
                if any(
                    item.name in self._config.hangup_tools
                    and (
                        item.status == "completed"
                        or (item.status is None and event.status == "completed")
                    )
                    for item in event.output
                ):
                    self._responder.begin_hang_up(now)
                out = self._deliver(raw)
            case ItemDeleted() if self._caller.own_delete(event.item_id):
                out = []  # the bot did not ask for it
            case SessionCreated() | SessionUpdated():
                self._caller.transcripts.session(event)
                out = self._session(event, raw)
            case _:
                out = self._caller.words(event, raw, now)
        return out + self._settle(now)

    def _deliver(self, raw: object) -> list[TurnAction]:
        return [Deliver(event=raw)] if self._bot else []

    def _audio(self, event: AudioDelta, raw: object, now: float) -> list[TurnAction]:
        phone = self._phone
        if not phone.playable(event.response_id):
            return []  # of a cancelled, finished or talked-over response: never heard
        if not self._bot:
            phone.model_audio(event)
            return []
        phone.to_bot(event, now)
        return [Deliver(event=raw)]

    def _session(self, event: SessionCreated | SessionUpdated, raw: object) -> list[TurnAction]:
        if event.input_format is not None:
            self._input_format = event.input_format
        detection = event.turn_detection
        if detection is not None:
            if detection.silence_duration_ms is not None:
                self._caller.barges.silence_ms = detection.silence_duration_ms
            if detection.prefix_padding_ms is not None:
                self._caller.barges.padding_ms = detection.prefix_padding_ms
        out = self._deliver(raw)
        if self._bot and self._config.turn_control and self._session_fixes < 2:
            fix = turn_control_fix(event)
            if fix is not None:
                self._session_fixes += 1
                logger.info(
                    "session lets the server cancel or answer: turning that off (turn control)",
                    extra={"call_sid": self.state.call_sid, "stream_sid": self.state.stream_sid},
                )
                out.append(SendToModel(message=fix))
        return out

    # ------------------------------------------------------------------ responses

    def create(self, request: CreateRequest, now: float) -> tuple[Decision, list[TurnAction]]:
        """Ask for a ``response.create`` of the engine's own (a turn, the greeting, a prompt).

        Returns:
            The create guard's decision, and the create to send when it is allowed (a deferred
            one comes back from a later input, when it may go).
        """
        return self._responder.create(request, now)

    def bot_create_sent(self, response: Mapping[str, Any] | None) -> None:
        """The bot's own ``response.create`` went out (it counts for the open request)."""
        self._responder.sent(response)

    def begin_hang_up(self, now: float) -> None:
        """A hang-up started (the model's ``end_call``, or the bot's own decision): no new
        response starts."""
        self._responder.begin_hang_up(now)

    def end_call(self, reason: str) -> list[TurnAction]:
        """End the call now (once)."""
        return self._responder.end_call(reason)

    def wind_up(self, now: float, *, within: float, instructions: str | None = None) -> None:
        """End the call soon (a server that drains): the bot says goodbye at once (with
        *instructions*, else the time limit's), then hangs up once it played, and by
        ``now + within`` at the latest."""
        self._responder.wind_up(now, within=within, instructions=instructions)

    def tool_finished(self) -> None:
        """The bot answered a function call (its ``function_call_output``): the caller waits no
        more for a tool, and what comes next is a new request."""
        self._tool_running = False
        self.answers.new_request()

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` has work next (a confirmation, a re-judgement, the playout, a
        lost create, the call's own timers)."""
        phone, caller = self._phone.next_deadline(), self._caller.next_deadline()
        return earliest(earliest(phone, caller), self._responder.next_deadline())

    def on_tick(self, now: float) -> list[TurnAction]:
        """Do what is due at *now*."""
        out = self._caller.on_tick(now)
        out += self._responder.on_tick(now)
        out += self._phone.pull(now)
        return out + self._settle(now)

    def _settle(self, now: float) -> list[TurnAction]:
        """After every input: deferred requests that may go now, who holds the floor, the line's
        silence, the hang-up after the goodbye."""
        responder = self._responder
        out = responder.release(now)
        busy = self.bot_busy(now)
        started = busy and not self._was_busy
        self._was_busy = busy
        floor = self._floor
        if busy and (floor is Floor.LISTENING or (started and floor is Floor.CALLER)):
            # A response the caller talked over winds down while they keep the floor; a new
            # one (a create that went out) takes it.
            self._move(FloorTrigger.BOT_STARTED)
        elif not busy and floor in (Floor.BOT, Floor.JUDGING):
            self._move(FloorTrigger.BOT_FINISHED)
        quiet = self._floor is Floor.LISTENING and not self._tool_running
        self.deadlines.line(quiet=quiet and not self.state.hangup_pending, now=now)
        phone = self._phone
        return out + responder.hang_up_when_played(
            playing=phone.busy(now), queued=phone.playout.queued_ms > 0, now=now
        )

    def close(self, now: float) -> list[TurnAction]:
        """The call ends: the final sends (stop the bot on the phone, cancel what runs)."""
        self.state.begin_closing()
        self.creates.drop_pending(now)
        self._move(FloorTrigger.CALL_ENDED)
        out = self._phone.close(ended=self.deadlines.ended)
        if self.state.response_active:
            cancel = self.cancels.request(now, barge_in=False)
            if cancel.allowed:
                out.append(SendToModel(message=response_cancel(cancel.response_id)))
        return out

    def _move(self, trigger: FloorTrigger) -> Floor:
        before = self._floor
        after = self._floor = FLOOR_TRANSITIONS[before, trigger]
        if after is not before:
            logger.debug(
                "floor %s -> %s on %s",
                before.value,
                after.value,
                trigger.value,
                extra={"call_sid": self.state.call_sid, "stream_sid": self.state.stream_sid},
            )
        return after
