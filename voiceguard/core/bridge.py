"""BridgeCore: the reference bridge's decisions, sans-IO.

One :class:`BridgeCore` per call wires every guard together as DESIGN.md section 5 describes:
full turn control, a greeting under the greeting lock, inbound audio passed through untouched and
fed to the calibration gate, the model's audio paced to the phone with a mark per chunk, barge-in
as *pause at once, confirm, then cancel and truncate to what was heard* (or resume on a false
interruption), caller turns answered through the create guard, and a polite hang-up when the model
calls ``end_call``.

It does no I/O and never reads a clock. The caller feeds it every message of both peers
(:meth:`BridgeCore.on_phone`, :meth:`BridgeCore.on_model`) and wakes it at
:meth:`BridgeCore.next_deadline` (:meth:`BridgeCore.on_tick`); each call returns the
:data:`BridgeAction` list to carry out, in order: messages to send to either peer, call-scoped
timers to start or stop, and the hang-up. The anyio media handler is a thin pump around it, and a
test can drive it with literal timestamps.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypeAlias, final

from voiceguard.config import BridgeConfig
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import (
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    ResponseCreateGuard,
)
from voiceguard.core.playout import PlayoutBuffer
from voiceguard.core.record import DecisionCounts, DecisionSink, Recorder
from voiceguard.core.state import CallState
from voiceguard.decisions import Decision
from voiceguard.protocol.realtime import (
    END_CALL_TOOL_NAME,
    AudioDelta,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    RealtimeServerEvent,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    end_call_tool,
    input_audio_append,
    item_delete,
    item_truncate,
    response_cancel,
    response_create,
    session_update,
)
from voiceguard.protocol.twilio import (
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    TwilioEvent,
    clear_message,
    mark_message,
    media_message,
)

__all__ = (
    "BridgeAction",
    "BridgeCore",
    "HangUp",
    "NoteActivity",
    "SendToModel",
    "SendToPhone",
    "StartTimer",
    "StopTimer",
    "TimerName",
)

logger = logging.getLogger("voiceguard.bridge")

#: The call-scoped timers the bridge asks its runtime for.
TimerName: TypeAlias = Literal["watchdog", "hangup_fallback"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SendToModel:
    """Send *message* to the Realtime API (serialise it with :func:`voiceguard.protocol.dumps`).

    Attributes:
        message: A client event built by :mod:`voiceguard.protocol`.
    """

    message: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SendToPhone:
    """Send *message* to Twilio.

    Attributes:
        message: A Twilio ``media``, ``mark`` or ``clear`` message.
    """

    message: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StartTimer:
    """(Re)start the call-scoped timer *timer* (a restart replaces the pending one).

    Attributes:
        timer: Which timer: ``"watchdog"`` or ``"hangup_fallback"``.
    """

    timer: TimerName


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StopTimer:
    """Cancel the call-scoped timer *timer* if it is pending.

    Attributes:
        timer: Which timer.
    """

    timer: TimerName


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NoteActivity:
    """Tell the idle ladder that someone spoke (silence is counted from here).

    Attributes:
        who: ``"caller"`` for speech the calibration gate accepted (never noise or echo), or
            ``"bot"`` when the bot starts or finishes speaking.
    """

    who: Literal["caller", "bot"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    """End the call: close the Twilio stream (with no TwiML after ``<Connect>``, the call ends).

    Attributes:
        reason: Why, for the logs (``"goodbye played"``, ``"hang-up fallback"``, ...).
    """

    reason: str


#: What :class:`BridgeCore` asks its runtime to do.
BridgeAction: TypeAlias = SendToModel | SendToPhone | StartTimer | StopTimer | NoteActivity | HangUp

_WATCHDOG: Final = CreateRequest(
    origin=CreateOrigin.AUTOMATIC,
    policy=CreatePolicy.DROP,
    require_playback_idle=True,
    label="watchdog",
)
_TURN: Final = CreateRequest(label="turn")
#: Caller segments whose judgement is remembered (one per speech_started; a few are plenty).
_SEGMENTS_REMEMBERED: Final = 32
_DELTAS_REMEMBERED: Final = 64


@dataclass(slots=True)
class _BargeIn:
    """A barge-in the gate allowed, waiting to be confirmed or found false."""

    segment: str  # the caller's item id (from speech_started)
    audio_start_ms: int | None  # the segment's audio_start_ms, when known
    response_id: str | None  # the response the caller talked over
    confirm_at: float
    turn_committed: bool = False  # the caller's turn ended before the confirmation


@final
class BridgeCore:
    """The decisions of one guarded Twilio <-> Realtime call.

    Args:
        config: What the bridge says and how it reacts.
        state: The call's state (one is made when omitted).
        on_decision: Receives every decision of the call's guards (the calibration gate's
            judgements of ``speech_started``, the cancel arbiter's and the create guard's), in
            the order they are made: for metrics and call traces.

    Attributes:
        state: The call's :class:`~voiceguard.CallState`.
        cancels: Its :class:`~voiceguard.CancelArbiter`.
        creates: Its :class:`~voiceguard.ResponseCreateGuard`.
        gate: Its :class:`~voiceguard.CalibrationGate`.
        playout: Its :class:`~voiceguard.PlayoutBuffer`.
    """

    __slots__ = (
        "_barge",
        "_config",
        "_fallback_armed",
        "_false_interruptions",
        "_gate_record",
        "_hung_up",
        "_pending_segment",
        "_recent_deltas",
        "_segment_start",
        "_segments",
        "_silenced",
        "_stream_sid",
        "cancels",
        "creates",
        "gate",
        "playout",
        "state",
    )

    def __init__(
        self,
        *,
        config: BridgeConfig | None = None,
        state: CallState | None = None,
        on_decision: DecisionSink | None = None,
    ) -> None:
        self._config = config if config is not None else BridgeConfig()
        self.state = state if state is not None else CallState()
        self.gate = CalibrationGate(self._config.calibration)
        self.cancels = CancelArbiter(
            self.state, config=self._config.cancel, on_decision=on_decision
        )
        self.creates = ResponseCreateGuard(
            self.state, config=self._config.create, calibration=self.gate, on_decision=on_decision
        )
        state_ = self.state
        self._gate_record = Recorder(
            guard="calibration_gate",
            logger=logger,
            sink=on_decision,
            identity=lambda: (state_.call_sid, state_.stream_sid),
        )
        self._false_interruptions = 0
        self.playout = PlayoutBuffer(config=self._config.playout)
        self._stream_sid: str | None = None
        self._barge: _BargeIn | None = None
        # Caller segment (item id) -> did it count as the caller speaking?
        self._segments: OrderedDict[str, bool] = OrderedDict()
        self._segment_start: OrderedDict[str, int] = OrderedDict()
        self._pending_segment: str | None = None  # the segment whose judgement is deferred
        self._silenced: str | None = None  # a response the caller talked over: never played
        self._hung_up = False
        self._fallback_armed = False
        # Event ids of the latest audio deltas: a repeated one (a replaying proxy) is dropped.
        self._recent_deltas: OrderedDict[str, None] = OrderedDict()

    @property
    def config(self) -> BridgeConfig:
        """The bridge's configuration."""
        return self._config

    @property
    def stream_sid(self) -> str | None:
        """The Twilio stream, once ``start`` arrived."""
        return self._stream_sid

    @property
    def hung_up(self) -> bool:
        """True once a :class:`HangUp` was returned."""
        return self._hung_up

    @property
    def false_interruptions(self) -> int:
        """Barge-ins allowed, then found false (the speech vanished) and the bot resumed."""
        return self._false_interruptions

    def barge_in_statistics(self) -> DecisionCounts:
        """The calibration gate's judgements of ``speech_started`` as this bridge acted on them.

        Deferrals, final verdicts and late barge-ins, each counted once.
        """
        return self._gate_record.snapshot()

    # ------------------------------------------------------------------ the phone side

    def on_phone(self, event: TwilioEvent, now: float) -> list[BridgeAction]:
        """Take one message from Twilio; return what to do."""
        if isinstance(event, MediaReceived):
            return self._on_media(event, now)
        if isinstance(event, MarkPlayed):
            heard = self.playout.mark_played(event.name)
            actions: list[BridgeAction] = []
            if heard is not None:
                self.state.record_playout(item_id=heard.item_id, heard_ms=heard.heard_ms)
                if self.playout.idle:
                    actions.append(NoteActivity(who="bot"))  # the bot's audio ended just now
            return actions + self._maybe_hang_up("goodbye played")
        if isinstance(event, StreamStarted):
            return self._on_start(event, now)
        if isinstance(event, StreamStopped):
            self.state.begin_closing()
            self.creates.drop_pending(now)
        return []

    def _on_start(self, event: StreamStarted, now: float) -> list[BridgeAction]:
        self._stream_sid = event.stream_sid
        self.state.call_sid = event.call_sid
        self.state.stream_sid = event.stream_sid
        cfg = self._config
        actions: list[BridgeAction] = [
            SendToModel(
                message=session_update(
                    instructions=cfg.instructions,
                    voice=cfg.voice,
                    tools=[end_call_tool()],
                    prefix_padding_ms=cfg.calibration.prefix_padding_ms,
                    silence_duration_ms=cfg.silence_duration_ms,
                )
            )
        ]
        if cfg.greeting is not None:
            greeting = CreateRequest(
                greeting=True,
                policy=CreatePolicy.DROP,
                response={"instructions": cfg.greeting},
                label="greeting",
            )
            if self.creates.request(greeting, now).allowed:
                actions.append(SendToModel(message=response_create(greeting.response)))
        return actions

    def _on_media(self, event: MediaReceived, now: float) -> list[BridgeAction]:
        # The payload passes through untouched: no decode and re-encode on the way to the model.
        actions: list[BridgeAction] = [SendToModel(message=input_audio_append(event.payload))]
        self.gate.push_inbound(event.audio, now)
        late = self.gate.poll_barge_in(now)
        if late is not None:
            item = next(reversed(self._segments), None)
            self._gate_record.record(replace(late, item_id=item), now)
        if late is not None and late.allowed:
            segment = next(reversed(self._segments), None)
            if segment is not None:
                self._segments[segment] = True
                actions.append(NoteActivity(who="caller"))
                actions += self._begin_barge_in(segment, now)
        return actions

    # ------------------------------------------------------------------ the model side

    def on_model(self, event: RealtimeServerEvent, now: float) -> list[BridgeAction]:
        """Take one event from the Realtime API; return what to do."""
        if isinstance(event, AudioDelta) and self._repeated_delta(event):
            return []
        self.state.observe(event)
        actions: list[BridgeAction] = []
        if isinstance(event, AudioDelta):
            if self.state.should_play(event.response_id) and event.response_id != self._silenced:
                self.playout.push(
                    item_id=event.item_id, response_id=event.response_id, audio=event.audio
                )
            return actions
        if isinstance(event, SpeechStarted):
            decision = self.gate.judge_speech_started(
                now, audio_start_ms=event.audio_start_ms, user_has_spoken=self.state.user_has_spoken
            )
            self._segment_start[event.item_id] = event.audio_start_ms
            actions += self._judged(event.item_id, decision, now)
        elif isinstance(event, SpeechStopped):
            settled = self.gate.speech_stopped(now)
            if settled is not None:
                actions += self._judged(event.item_id, settled, now)
            barge = self._barge
            if barge is not None and barge.segment == event.item_id:
                actions += self._speech_ended_early(barge, event, now)
        elif isinstance(event, InputAudioCommitted):
            actions += self._on_turn(event.item_id, now)
        elif isinstance(event, ResponseCreated):
            actions += [StopTimer(timer="watchdog"), NoteActivity(who="bot")]
        elif isinstance(event, FunctionCallArgumentsDone) and event.name == END_CALL_TOOL_NAME:
            actions += self._begin_hang_up(now)
        elif isinstance(event, ResponseDone):
            # Only a finished end_call counts: one cut off by a barge-in was never made.
            if any(
                item.name == END_CALL_TOOL_NAME
                and (
                    item.status == "completed"
                    or (item.status is None and event.status == "completed")
                )
                for item in event.output
            ):
                actions += self._begin_hang_up(now)
            actions += self._maybe_hang_up("goodbye played")
        actions += self._release(now)
        return actions

    def _judged(self, segment: str, decision: Decision, now: float) -> list[BridgeAction]:
        self._gate_record.record(replace(decision, item_id=segment), now)
        if decision.deferred:
            self._pending_segment = segment  # the gate asks again at its deadline (on_tick)
            return []
        if segment == self._pending_segment:
            self._pending_segment = None
        self._segments[segment] = decision.allowed
        self._segments.move_to_end(segment)
        while len(self._segments) > _SEGMENTS_REMEMBERED:
            self._segments.popitem(last=False)
        while len(self._segment_start) > _SEGMENTS_REMEMBERED:
            self._segment_start.popitem(last=False)
        if not decision.allowed:
            return []  # noise or echo: not activity, so a noisy line still counts as silent
        return [NoteActivity(who="caller"), *self._begin_barge_in(segment, now)]

    def _begin_barge_in(self, segment: str, now: float) -> list[BridgeAction]:
        """The caller is speaking: stop the bot at once, confirm later."""
        self.state.note_user_spoke()
        state = self.state
        bot_audible = not self.playout.idle or state.response_active or state.create_in_flight
        if not bot_audible:
            return []  # an ordinary turn start; nothing to interrupt
        actions: list[BridgeAction] = []
        if self.playout.pause() and self._stream_sid is not None:
            state.playback_cleared()
            actions.append(SendToPhone(message=clear_message(self._stream_sid)))
        item = self.state.current_item
        self._barge = _BargeIn(
            segment=segment,
            audio_start_ms=self._segment_start.get(segment),
            response_id=item.response_id if item is not None else self.state.active_response_id,
            confirm_at=now + self._config.confirm_barge_in,
        )
        return actions

    def _speech_ended_early(
        self, barge: _BargeIn, event: SpeechStopped, now: float
    ) -> list[BridgeAction]:
        """The caller's speech ended before the confirmation time: a short answer or a blip?"""
        cfg = self._config
        if barge.audio_start_ms is not None:
            # The VAD's segment includes the prefix padding before and the silence after.
            speech_ms = (event.audio_end_ms - cfg.silence_duration_ms) - (
                barge.audio_start_ms + cfg.calibration.prefix_padding_ms
            )
            if speech_ms < 1000 * cfg.min_barge_in_speech:
                return self._false_interruption(barge.segment, now)
        return self._confirm_barge_in(barge, now)

    def _false_interruption(self, segment: str, now: float) -> list[BridgeAction]:
        """The speech was too short to be the caller taking the turn: the bot plays on."""
        self._barge = None
        self._false_interruptions += 1
        self._segments[segment] = False
        self.cancels.withdraw()
        self.playout.resume()
        logger.info(
            "false interruption: resuming playout",
            extra={"call_sid": self.state.call_sid, "stream_sid": self.state.stream_sid, "t": now},
        )
        return []

    def _confirm_barge_in(self, barge: _BargeIn, now: float) -> list[BridgeAction]:
        """The caller kept talking: cancel, truncate to what was heard, drop the rest."""
        self._barge = None
        actions: list[BridgeAction] = []
        cancel = self.cancels.request(now)
        if cancel.allowed:
            actions.append(SendToModel(message=response_cancel(cancel.response_id)))
        item = self.state.current_item
        if item is not None and item.truncated_ms is None:
            point = self.state.truncate_point(item.item_id)
            if point is not None and point < int(item.received_ms):
                self.state.truncate_sent(item_id=item.item_id, audio_end_ms=point)
                actions.append(SendToModel(message=item_truncate(item.item_id, point)))
        if barge.response_id is not None:
            self._silenced = barge.response_id
            self.playout.drop(response_id=barge.response_id)
        self.playout.resume()
        if barge.turn_committed:
            actions += self._on_turn(barge.segment, now)
        return actions

    def _on_turn(self, segment: str, now: float) -> list[BridgeAction]:
        """A caller turn was committed: answer it, unless it was echo, noise or a false start."""
        spoken = self._segments.get(segment)
        if spoken is False:
            if self._config.delete_echo_turns:
                return [SendToModel(message=item_delete(segment))]
            return []
        if self._barge is not None and self._barge.segment == segment:
            self._barge.turn_committed = True  # answered once the barge-in is confirmed
            return []
        decision = self.creates.request(_TURN, now)
        if decision.allowed:
            return [SendToModel(message=response_create()), StartTimer(timer="watchdog")]
        return []

    def _begin_hang_up(self, now: float) -> list[BridgeAction]:
        if self.state.hangup_pending:
            return []
        self.state.begin_hangup()
        self.creates.drop_pending(now)
        return [StopTimer(timer="watchdog")]

    def _maybe_hang_up(self, reason: str) -> list[BridgeAction]:
        """Once the goodbye is all on the phone, start the fallback; once it played, hang up."""
        if not self.state.hangup_pending or self._hung_up or self.state.response_active:
            return []
        if self.playout.idle:
            self._hung_up = True
            return [StopTimer(timer="hangup_fallback"), HangUp(reason=reason)]
        if not self._fallback_armed and self.playout.queued_ms == 0:
            # Armed when the last of the goodbye is handed to the phone, not when the model
            # starts it: only the phone's buffer is left to play, so the delay bounds it.
            self._fallback_armed = True
            return [StartTimer(timer="hangup_fallback")]
        return []

    def _release(self, now: float) -> list[BridgeAction]:
        actions: list[BridgeAction] = []
        cancel = self.cancels.release(now)
        if cancel is not None and cancel.allowed:
            actions.append(SendToModel(message=response_cancel(cancel.response_id)))
        released = self.creates.release(now)
        if released is not None:
            actions.append(SendToModel(message=response_create(released.request.response)))
            actions.append(StartTimer(timer="watchdog"))
        return actions

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` has work next (playout, a gate re-check, a barge-in to confirm)."""
        deadlines = [
            d
            for d in (
                self.playout.next_deadline(),
                self.gate.next_deadline(),
                self._barge.confirm_at if self._barge is not None else None,
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    def on_tick(self, now: float) -> list[BridgeAction]:
        """Do what is due at *now*: confirm a barge-in, re-judge a deferral, pace the playout."""
        actions: list[BridgeAction] = []
        barge = self._barge
        if barge is not None and now >= barge.confirm_at:
            actions += self._confirm_barge_in(barge, now)
            actions += self._release(now)
        gate_deadline = self.gate.next_deadline()
        if gate_deadline is not None and now >= gate_deadline:
            decision = self.gate.recheck(now)
            segment = self._pending_segment
            if segment is not None:
                actions += self._judged(segment, decision, now)
        stream_sid = self._stream_sid
        if stream_sid is not None:
            for chunk in self.playout.pull(now):
                payload = base64.b64encode(chunk.audio).decode("ascii")
                actions.append(SendToPhone(message=media_message(stream_sid, payload)))
                actions.append(SendToPhone(message=mark_message(stream_sid, chunk.mark)))
                self.gate.push_outbound(chunk.audio, now)
                self.state.record_playout(item_id=chunk.item_id, sent_ms=chunk.end_ms)
        actions += self._maybe_hang_up("goodbye played")
        return actions

    def _repeated_delta(self, event: AudioDelta) -> bool:
        """True for an audio delta seen before (same event id): playing it would say it twice
        and count its audio twice towards truncation."""
        recent = self._recent_deltas
        if event.event_id in recent:
            logger.warning(
                "dropped a repeated audio delta %s of response %s",
                event.event_id,
                event.response_id,
                extra={"call_sid": self.state.call_sid},
            )
            return True
        recent[event.event_id] = None
        if len(recent) > _DELTAS_REMEMBERED:
            recent.popitem(last=False)
        return False

    # ------------------------------------------------------------------ timers and the end

    def on_watchdog(self, now: float) -> list[BridgeAction]:
        """The watchdog fired: a caller turn got no response; ask once more (if still valid).

        A create still waiting for its ``response.created`` after the watchdog's whole delay was
        lost on the way: it is abandoned first, so that the new one may go.
        """
        if self.state.create_in_flight:
            self.state.abandon_create(now=now)
        if self.creates.request(_WATCHDOG, now).allowed:
            return [SendToModel(message=response_create())]
        return []

    def on_idle_prompt(self, number: int, now: float) -> list[BridgeAction]:
        """The caller has been silent for a rung of the idle ladder: ask whether they are there.

        The prompt is an automatic create that is dropped if anything runs or plays.
        """
        prompt = CreateRequest(
            origin=CreateOrigin.AUTOMATIC,
            policy=CreatePolicy.DROP,
            require_playback_idle=True,
            response={"instructions": self._config.idle_prompt},
            label=f"idle_prompt_{number}",
        )
        if self.creates.request(prompt, now).allowed:
            return [SendToModel(message=response_create(prompt.response))]
        return []

    def on_idle_hangup(self, now: float) -> list[BridgeAction]:
        """The caller stayed silent through every prompt: end the call."""
        if self._hung_up:
            return []
        self._hung_up = True
        self.state.begin_hangup()
        return [HangUp(reason="caller silent")]

    def on_max_duration(self, now: float) -> list[BridgeAction]:
        """The call reached its polite time limit: the bot says goodbye and calls ``end_call``.

        The goodbye waits for a running response (it is deferred, not dropped); the hard limit
        ends the call if the goodbye never comes.
        """
        goodbye = CreateRequest(
            response={"instructions": self._config.time_limit_goodbye},
            label="time_limit_goodbye",
        )
        if self.creates.request(goodbye, now).allowed:
            return [SendToModel(message=response_create(goodbye.response))]
        return []

    def on_max_duration_hard(self, now: float) -> list[BridgeAction]:
        """The call reached its hard time limit: end it."""
        if self._hung_up:
            return []
        self._hung_up = True
        self.state.begin_hangup()
        return [HangUp(reason="maximum call duration")]

    def on_hangup_fallback(self, now: float) -> list[BridgeAction]:
        """The goodbye's mark never came: hang up anyway."""
        if self._hung_up:
            return []
        self._hung_up = True
        return [HangUp(reason="hang-up fallback")]

    def close(self, now: float) -> list[BridgeAction]:
        """The call ends: the final sends (stop the bot on the phone, cancel what runs)."""
        self.state.begin_closing()
        self.creates.drop_pending(now)
        actions: list[BridgeAction] = []
        if self.playout.pause() and self._stream_sid is not None and not self._hung_up:
            self.state.playback_cleared()
            actions.append(SendToPhone(message=clear_message(self._stream_sid)))
        if self.state.response_active:
            cancel = self.cancels.request(now, barge_in=False)
            if cancel.allowed:
                actions.append(SendToModel(message=response_cancel(cancel.response_id)))
        return actions
