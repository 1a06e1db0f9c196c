"""CallGuard: the guards of one call, placed around a bot's own sockets (sans-IO).

The adapters in :mod:`voiceguard.middleware` feed it every message the bot sends to or receives
from the model (and, when the bot lets them wrap its Twilio socket too, the phone's messages) and
carry out what it returns. It never does I/O and never reads a clock: every method takes ``now``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, final

from voiceguard.config import GuardConfig
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreatePolicy, CreateRequest, ResponseCreateGuard
from voiceguard.core.record import DecisionCounts, DecisionSink, Recorder
from voiceguard.core.state import CallState
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.protocol.realtime import (
    PCMU,
    AudioDelta,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    ItemDeleted,
    RealtimeServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    item_delete,
    response_cancel,
    response_create,
)
from voiceguard.protocol.twilio import MarkPlayed, MediaReceived, StreamStarted, StreamStopped

__all__ = ("CallGuard", "GuardConfig", "GuardStep")

logger = logging.getLogger("voiceguard.middleware")

#: Caller segments whose judgement is remembered.
_SEGMENTS_REMEMBERED: Final = 32
#: How often the receiving side looks for a late barge-in while the caller talks over the bot.
_WATCH_INTERVAL: Final = 0.04
#: Corrections of the session's turn detection sent per connection, at most.
_MAX_SESSION_FIXES: Final = 2
#: mu-law: 8 bytes of audio per millisecond; frames of 20 ms.
_BYTES_PER_MS: Final = 8.0
_FRAME_BYTES: Final = 160
_FRAME_SECONDS: Final = 0.02
_TURN: Final = CreateRequest(label="turn")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GuardStep:
    """What an adapter does after handing the guard one message or a tick.

    Attributes:
        deliver: The model's messages to hand to the bot now, in order: the objects the adapter
            passed in (raw text, SDK events, ...), so the bot sees exactly what the model sent.
        send: Messages to send to the model now, in order (the guard's own cancels, creates
            and deletes, deferred requests of the bot now released).
    """

    deliver: tuple[object, ...] = ()
    send: tuple[Mapping[str, Any], ...] = ()


_NOTHING: Final = GuardStep()


@dataclass(slots=True)
class _Chunk:
    start: float  # when it starts playing on the phone
    offset_ms: float  # its position in its item
    ms: float


class _Playback:
    """The phone's buffer in time: audio plays in order, in real time, from when it is handed over.

    Gives how much of an item the caller has heard when no mark tells it, and the bot's audio
    frame by frame as it plays (for the calibration gate: a bot that hands the phone a whole
    answer at once has not said it yet).
    """

    __slots__ = ("_chunks", "_frames", "_item", "_played_ms", "_queue_end", "_rest", "_sent_ms")

    def __init__(self) -> None:
        self._item: str | None = None
        self._chunks: deque[_Chunk] = deque()
        self._played_ms = 0.0
        self._sent_ms = 0.0
        self._queue_end = 0.0
        self._frames: deque[tuple[float, bytes]] = deque()  # (plays at, one 20 ms frame)
        self._rest = b""

    def handed(self, item_id: str, audio: bytes, now: float) -> float:
        """mu-law *audio* of *item_id* handed to the phone at *now*; returns the total sent."""
        if item_id != self._item:
            self._item, self._played_ms, self._sent_ms = item_id, 0.0, 0.0
            self._chunks.clear()
        ms = len(audio) / _BYTES_PER_MS
        start = max(now, self._queue_end)
        self._chunks.append(_Chunk(start=start, offset_ms=self._sent_ms, ms=ms))
        self._sent_ms += ms
        self._queue_end = start + ms / 1000.0
        data = self._rest + audio
        whole = len(data) - len(data) % _FRAME_BYTES
        self._rest = data[whole:]
        first = self._queue_end - whole / _BYTES_PER_MS / 1000.0
        for index, offset in enumerate(range(0, whole, _FRAME_BYTES)):
            self._frames.append(
                (first + index * _FRAME_SECONDS, data[offset : offset + _FRAME_BYTES])
            )
        return self._sent_ms

    def playing(self, now: float) -> list[bytes]:
        """The frames that started playing by *now* and were not returned before."""
        frames = self._frames
        out = []
        while frames and frames[0][0] <= now:
            out.append(frames.popleft()[1])
        return out

    def heard_ms(self, item_id: str, now: float) -> float | None:
        """How much of *item_id* has played by *now* (None if it is not the current item)."""
        if item_id != self._item:
            return None
        chunks = self._chunks
        while chunks and chunks[0].start + chunks[0].ms / 1000.0 <= now:
            done = chunks.popleft()
            self._played_ms = done.offset_ms + done.ms
        if chunks and chunks[0].start < now:
            return chunks[0].offset_ms + 1000.0 * (now - chunks[0].start)
        return self._played_ms

    def cleared(self, now: float) -> None:
        """The phone's buffer was flushed: what had not played never will."""
        if self._item is not None:
            heard = self.heard_ms(self._item, now) or 0.0
            self._chunks.clear()
            self._played_ms = self._sent_ms = heard
        self._queue_end = now
        self._frames.clear()
        self._rest = b""


class _Marks:
    """Marks the bot sent to the phone after its audio, and Twilio's echoes of them."""

    __slots__ = ("_pending", "_stale", "used")

    def __init__(self) -> None:
        self._pending: deque[tuple[str, float]] = deque()  # (item id, sent ms) per mark
        self._stale = 0  # echoes still due for marks sent before a clear
        self.used = False

    def sent(self, item_id: str | None, sent_ms: float) -> None:
        if item_id is not None:
            self._pending.append((item_id, sent_ms))

    def echoed(self) -> tuple[str, float] | None:
        """A mark echo arrived: the position it confirms as heard (None for a stale echo)."""
        if self._stale:
            self._stale -= 1  # Twilio echoes every pending mark at once on a clear
            return None
        if not self._pending:
            return None
        self.used = True
        return self._pending.popleft()

    def cleared(self) -> None:
        self._stale += len(self._pending)
        self._pending.clear()


@final
class CallGuard:
    """The guards of one call, for a bot that keeps its own event loop.

    Feed it the messages the bot sends to the model (:meth:`to_model`) and those it receives
    (:meth:`from_model`), and, if the bot's Twilio socket is wrapped too, the phone's
    (:meth:`to_phone`, :meth:`from_phone`); wake it at :meth:`next_deadline`
    (:meth:`on_tick`). The adapters of :mod:`voiceguard.middleware` do all of this; use the
    class directly only to write an adapter of your own.

    Args:
        config: Turn control or observer mode, and the guards' settings.
        call_sid: The call's id for log records (learnt from Twilio's ``start`` when the phone
            socket is wrapped).
        on_decision: Receives every decision of the call's guards, in order.
        on_judged: Called with ``(item_id, real)`` once a caller segment is judged: real
            speech, or echo and noise (a late barge-in calls it again with True).

    Attributes:
        state: The call's :class:`~voiceguard.CallState`.
        cancels: Its :class:`~voiceguard.CancelArbiter`.
        creates: Its :class:`~voiceguard.ResponseCreateGuard`.
        gate: Its :class:`~voiceguard.CalibrationGate`.
    """

    __slots__ = (
        "_barge_record",
        "_config",
        "_held",
        "_in_rest",
        "_last_create",
        "_marks",
        "_on_judged",
        "_own_deletes",
        "_pending",
        "_phone_in",
        "_phone_out",
        "_playback",
        "_retried",
        "_segments",
        "_server_answers_for_bot",
        "_server_cancels_for_bot",
        "_session_fixes",
        "_speaking",
        "_truncate_record",
        "_watching",
        "cancels",
        "creates",
        "gate",
        "state",
    )

    def __init__(
        self,
        config: GuardConfig | None = None,
        *,
        call_sid: str | None = None,
        on_decision: DecisionSink | None = None,
        on_judged: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._config = config if config is not None else GuardConfig()
        self._on_judged = on_judged
        cfg = self._config
        self.state = CallState(config=cfg.state, call_sid=call_sid)
        self.gate = CalibrationGate(cfg.calibration)
        self.cancels = CancelArbiter(self.state, config=cfg.cancel, on_decision=on_decision)
        self.creates = ResponseCreateGuard(
            self.state, config=cfg.create, calibration=self.gate, on_decision=on_decision
        )
        state = self.state

        def identity() -> tuple[str | None, str | None]:
            return state.call_sid, state.stream_sid

        self._barge_record = Recorder(
            guard="calibration_gate", logger=logger, sink=on_decision, identity=identity
        )
        self._truncate_record = Recorder(
            guard="truncate", logger=logger, sink=on_decision, identity=identity
        )
        self._segments: OrderedDict[str, bool] = OrderedDict()  # judged: real speech or not
        # Events of a caller segment not shown to the bot yet: (raw, is the turn's commit).
        self._held: dict[str, list[tuple[object, bool]]] = {}
        self._pending: str | None = None  # the segment the gate is still judging
        self._watching: str | None = None  # a hidden segment, watched for a late barge-in
        self._own_deletes: set[str] = set()
        self._speaking = False
        self._phone_in = False  # caller audio comes from the wrapped phone socket
        self._phone_out = False  # bot audio is seen going to the wrapped phone socket
        self._in_rest = b""
        self._playback = _Playback()
        self._marks = _Marks()
        self._session_fixes = 0
        self._last_create: Mapping[str, Any] | None = None  # what the last create asked for
        self._retried = False  # the lost create was sent once more already
        # The bot's session leaves cancelling on speech / answering turns to the server (the
        # server's defaults): in turn control the guard does it in the server's place.
        self._server_cancels_for_bot = True
        self._server_answers_for_bot = True

    @property
    def config(self) -> GuardConfig:
        """The guard's configuration."""
        return self._config

    def barge_in_statistics(self) -> DecisionCounts:
        """The calibration gate's judgements of ``speech_started`` as the guard acted on them."""
        return self._barge_record.snapshot()

    def truncate_statistics(self) -> DecisionCounts:
        """The decisions about the bot's ``conversation.item.truncate`` messages."""
        return self._truncate_record.snapshot()

    def judgement(self, item_id: str) -> bool | None:
        """Whether the caller segment *item_id* was real speech (None: not judged, or unknown)."""
        return self._segments.get(item_id)

    # ------------------------------------------------------------------ bot -> model

    def to_model(self, message: Mapping[str, Any], now: float) -> list[Mapping[str, Any]]:
        """The bot sends *message* to the model: what actually goes, in order.

        Returns:
            ``[message]`` itself (the same object) when it passes unchanged, a changed copy
            (a truncate lowered to what was heard, a session update that keeps turn control),
            or nothing when a guard suppressed or deferred it (deferred ones come back in a
            later :class:`GuardStep`).
        """
        kind = message.get("type")
        if kind == "input_audio_buffer.append":
            if not self._phone_in:
                self._caller_audio(message.get("audio"), now)
            return [message]
        if kind == "response.cancel":
            return self._bot_cancel(message, now)
        if kind == "response.create":
            return self._bot_create(message, now)
        if kind == "conversation.item.truncate":
            return self._bot_truncate(message, now)
        if kind == "session.update" and self._config.turn_control:
            detection = _turn_detection_set(message)
            if detection is not None:
                # What the bot expects of the server is what the guard does in its place.
                self._server_cancels_for_bot = detection.get("interrupt_response") is not False
                self._server_answers_for_bot = detection.get("create_response") is not False
            return [_keep_turn_control(message)]
        return [message]

    def _caller_audio(self, payload: object, now: float) -> None:
        if not isinstance(payload, str) or self.state.audio_format != PCMU:
            return
        try:
            audio = self._in_rest + base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return  # the model will refuse it; its error reaches the bot
        whole = len(audio) - len(audio) % _FRAME_BYTES
        self._in_rest = audio[whole:]
        if whole:
            self._caller_frames(audio[:whole], now)

    def _caller_frames(self, audio: bytes, now: float) -> None:
        """The caller's audio for the gate, after the bot's audio that played up to now."""
        if self.state.audio_format == PCMU:
            for frame in self._playback.playing(now):
                self.gate.push_outbound(frame, now)
        self.gate.push_inbound(audio, now)

    def _bot_cancel(self, message: Mapping[str, Any], now: float) -> list[Mapping[str, Any]]:
        asked = message.get("response_id")
        decision = self.cancels.request(
            now,
            response_id=asked if isinstance(asked, str) and asked else None,
            barge_in=self._speaking,
        )
        if not decision.allowed:
            return []
        sent = dict(message)
        if decision.response_id is not None:
            sent["response_id"] = decision.response_id  # never lands on the next response
        return [sent]

    def _bot_create(self, message: Mapping[str, Any], now: float) -> list[Mapping[str, Any]]:
        response = message.get("response")
        if isinstance(response, Mapping) and response.get("conversation") == "none":
            return [message]  # out of band: it does not compete for the default conversation
        request = CreateRequest(
            policy=self._config.create_policy,
            response=response if isinstance(response, Mapping) else None,
            label="bot",
        )
        if not self.creates.request(request, now).allowed:
            return []
        self._created(request.response)
        return [message]

    def request_response(self, request: CreateRequest, now: float) -> Decision:
        """Ask for a ``response.create`` of the guard's own (a helper's, a timer's).

        Returns:
            The :class:`~voiceguard.ResponseCreateGuard`'s decision. Allowed: send
            ``response.create`` with ``request.response`` now. Deferred: it comes back in a
            later :class:`GuardStep` when it may go.
        """
        decision = self.creates.request(request, now)
        if decision.allowed:
            self._created(request.response)
        return decision

    def _created(self, response: Mapping[str, Any] | None) -> None:
        """A create goes out now (remembered, to send it again if it is lost)."""
        self._last_create = response
        self._retried = False

    def _bot_truncate(self, message: Mapping[str, Any], now: float) -> list[Mapping[str, Any]]:
        item_id = message.get("item_id")
        end = message.get("audio_end_ms")
        item = self.state.item(item_id) if isinstance(item_id, str) else None
        if item is None or not isinstance(end, int) or isinstance(end, bool) or end < 0:
            self._truncate_record.record(
                Decision(
                    action=Action.TRUNCATE,
                    verdict=Verdict.SUPPRESS,
                    reason=Reason.UNKNOWN_ITEM,
                    item_id=item_id if isinstance(item_id, str) else None,
                    detail="no audio of it was received"
                    if item is None
                    else f"audio_end_ms={end!r} is not a count of ms",
                ),
                now,
            )
            return []
        self._update_heard(item.item_id, now)
        point = self.state.truncate_point(item.item_id)
        limit = 0 if point is None else point
        target = min(end, limit)
        if item.truncated_ms is not None and target >= item.truncated_ms:
            self._truncate_record.record(
                Decision(
                    action=Action.TRUNCATE,
                    verdict=Verdict.SUPPRESS,
                    reason=Reason.ALREADY_TRUNCATED,
                    response_id=item.response_id,
                    item_id=item.item_id,
                    detail=f"already truncated to {item.truncated_ms} ms",
                ),
                now,
            )
            return []
        reason = Reason.OK if target == end else Reason.CLAMPED_TO_HEARD
        self._truncate_record.record(
            Decision(
                action=Action.TRUNCATE,
                verdict=Verdict.ALLOW,
                reason=reason,
                response_id=item.response_id,
                item_id=item.item_id,
                detail="" if target == end else f"asked {end} ms, heard {target} ms",
            ),
            now,
        )
        self.state.truncate_sent(item_id=item.item_id, audio_end_ms=target)
        if not self._phone_out:
            # A bot truncates when it clears the phone; without its phone socket, this is the
            # only sign that what was still queued there will never play.
            self._phone_cleared(now)
        if target == end:
            return [message]
        return [{**message, "audio_end_ms": target}]

    def _update_heard(self, item_id: str, now: float) -> None:
        """Bring the item's heard position up to date (marks when the bot uses them, else time)."""
        if self._marks.used:
            return  # echoed marks already recorded it, to the chunk
        heard = self._playback.heard_ms(item_id, now)
        if heard is not None:
            self.state.record_playout(item_id=item_id, heard_ms=heard)

    # ------------------------------------------------------------------ model -> bot

    def from_model(self, event: RealtimeServerEvent, raw: object, now: float) -> GuardStep:
        """The model sent *event* (parsed from *raw*): what the bot gets and what goes back."""
        state = self.state
        state.observe(event)
        if isinstance(event, AudioDelta):
            if not state.should_play(event.response_id):
                return self._released(now)  # audio of a cancelled or finished response
            if not self._phone_out:
                self._bot_audio(event.item_id, event.audio, now)
            return GuardStep(deliver=(raw,))
        deliver: list[object] = [raw]
        send: list[Mapping[str, Any]] = []
        turn_control = self._config.turn_control
        if isinstance(event, SpeechStarted):
            self._speaking = True
            if state.audio_format != PCMU:
                decision = Decision(
                    action=Action.BARGE_IN,
                    verdict=Verdict.ALLOW,
                    reason=Reason.OK,
                    detail="not G.711 mu-law audio: the calibration gate cannot judge it",
                )
            else:
                decision = self.gate.judge_speech_started(
                    now, audio_start_ms=event.audio_start_ms, user_has_spoken=state.user_has_spoken
                )
            if turn_control:
                self._held[event.item_id] = [(raw, False)]
                return self._merge(self._judged(event.item_id, decision, now), self._released(now))
            self._judged(event.item_id, decision, now)  # observer mode: judged, not acted on
        elif isinstance(event, SpeechStopped):
            self._speaking = False
            if turn_control:
                settled = self.gate.speech_stopped(now)
                step = _NOTHING
                if settled is not None and self._pending == event.item_id:
                    step = self._judged(event.item_id, settled, now)
                if self._watching == event.item_id:
                    self._watching = None
                return self._merge(step, self._segment_event(event.item_id, raw, False, now))
        elif isinstance(event, InputAudioCommitted):
            if turn_control:
                step = self._segment_event(event.item_id, raw, True, now)
                return self._merge(step, self._released(now))
        elif isinstance(event, ItemDeleted) and event.item_id in self._own_deletes:
            self._own_deletes.discard(event.item_id)
            deliver = []  # the bot did not ask for it
        elif isinstance(event, (SessionCreated, SessionUpdated)) and turn_control:
            send += self._fix_session(event)
        elif isinstance(event, FunctionCallArgumentsDone) and (
            event.name in self._config.hangup_tools
        ):
            self.begin_hangup(now)
        return self._merge(GuardStep(deliver=tuple(deliver), send=tuple(send)), self._released(now))

    def _bot_audio(self, item_id: str, audio: bytes, now: float) -> None:
        """The bot's audio, at the moment the phone gets it (mu-law, 8 bytes per ms).

        The gate hears it as it plays (see :meth:`_caller_frames`), not all at once.
        """
        sent = self._playback.handed(item_id, audio, now)
        self.state.record_playout(item_id=item_id, sent_ms=sent)

    def _segment_event(self, segment: str, raw: object, commit: bool, now: float) -> GuardStep:
        """``speech_stopped`` or ``committed`` of a caller segment: shown if the speech was real.

        Held while the gate still judges the segment; hidden with the whole segment when it was
        echo or noise (a hidden segment's commit is the end of it: never answered, deleted by
        policy).
        """
        spoken = self._segments.get(segment)
        if segment == self._pending:
            self._held.setdefault(segment, []).append((raw, commit))
            return _NOTHING
        if spoken is False:
            if not commit:
                self._held.setdefault(segment, []).append((raw, commit))
                return _NOTHING
            return self._echo_turn(segment)
        step = GuardStep(deliver=(raw,))
        if commit:
            step = self._merge(step, self._answer(now))
        return step

    def _echo_turn(self, segment: str) -> GuardStep:
        """A committed turn that was echo or noise: never answered, deleted by policy."""
        self._held.pop(segment, None)
        if self._watching == segment:
            self._watching = None
        if not self._config.delete_echo_turns:
            return _NOTHING
        self._own_deletes.add(segment)
        return GuardStep(send=(item_delete(segment),))

    def _answer(self, now: float) -> GuardStep:
        """A real caller turn was committed: answer it (turn control, when configured)."""
        cfg = self._config
        if not (cfg.turn_control and cfg.answer_turns and self._server_answers_for_bot):
            return _NOTHING  # the bot answers its turns itself
        if self.state.server_creates:
            return _NOTHING  # the session was not corrected yet: the server answers
        if self.creates.request(_TURN, now).allowed:
            self._created(None)
            return GuardStep(send=(response_create(),))
        return _NOTHING

    def _judged(self, segment: str, decision: Decision, now: float) -> GuardStep:
        self._barge_record.record(dataclasses.replace(decision, item_id=segment), now)
        if decision.deferred:
            self._pending = segment
            return _NOTHING
        if self._pending == segment:
            self._pending = None
        self._segments[segment] = decision.allowed
        self._segments.move_to_end(segment)
        while len(self._segments) > _SEGMENTS_REMEMBERED:
            forgotten, _ = self._segments.popitem(last=False)
            self._held.pop(forgotten, None)  # a segment that never got its commit
        if not decision.allowed:
            self._watching = segment if self._speaking else None
            if self._on_judged is not None:
                self._on_judged(segment, False)
            return _NOTHING
        return self._barge_in(segment, now)

    def _barge_in(self, segment: str, now: float) -> GuardStep:
        """A real caller segment: show the bot what was held, stop the bot, answer the turn."""
        self._segments[segment] = True
        if self._watching == segment:
            self._watching = None
        self.state.note_user_spoke()
        if self._on_judged is not None:
            self._on_judged(segment, True)
        held = self._held.pop(segment, [])
        send: list[Mapping[str, Any]] = []
        state = self.state
        cancels = self._config.turn_control and self._server_cancels_for_bot
        if cancels and (state.response_active or state.create_in_flight):
            cancel = self.cancels.request(now)
            if cancel.allowed:
                send.append(response_cancel(cancel.response_id))
        step = GuardStep(deliver=tuple(raw for raw, _ in held), send=tuple(send))
        if any(commit for _, commit in held):
            step = self._merge(step, self._answer(now))
        return step

    def _fix_session(self, event: SessionCreated | SessionUpdated) -> list[Mapping[str, Any]]:
        """Keep turn control on a session that still lets the server cancel or answer."""
        detection = event.turn_detection
        if detection is None or self._session_fixes >= _MAX_SESSION_FIXES:
            return []
        if not (detection.interrupt_response or detection.create_response):
            return []
        self._session_fixes += 1
        session = event.session
        ga = "audio" in session or session.get("type") == "realtime"
        raw = _turn_detection_of(session, ga=ga)
        wanted = {**raw, "interrupt_response": False, "create_response": False}
        logger.info(
            "session lets the server %s: turning that off (turn control)",
            "cancel and answer"
            if detection.interrupt_response and detection.create_response
            else ("cancel" if detection.interrupt_response else "answer"),
            extra={"call_sid": self.state.call_sid, "stream_sid": self.state.stream_sid},
        )
        if ga:
            return [
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": wanted}}},
                }
            ]
        return [{"type": "session.update", "session": {"turn_detection": wanted}}]

    def _released(self, now: float) -> GuardStep:
        """Deferred requests that may go now (after every event)."""
        send: list[Mapping[str, Any]] = []
        cancel = self.cancels.release(now)
        if cancel is not None and cancel.allowed:
            send.append(response_cancel(cancel.response_id))
        released = self.creates.release(now)
        if released is not None:
            self._created(released.request.response)
            send.append(response_create(released.request.response))
        return GuardStep(send=tuple(send)) if send else _NOTHING

    @staticmethod
    def _merge(first: GuardStep, second: GuardStep) -> GuardStep:
        if second is _NOTHING:
            return first
        if first is _NOTHING:
            return second
        return GuardStep(deliver=first.deliver + second.deliver, send=first.send + second.send)

    # ------------------------------------------------------------------ the phone

    def watch_phone(self) -> None:
        """From now on the phone's messages come through :meth:`from_phone` and :meth:`to_phone`.

        The caller's audio and the bot's audio on its way to the phone are then taken from the
        phone socket, not from the model connection (where the bot's audio arrives faster than
        it plays). Called when the phone socket is wrapped, and by Twilio's ``start``.
        """
        self._phone_in = self._phone_out = True

    def to_phone(self, message: Mapping[str, Any], now: float) -> None:
        """The bot sends *message* to Twilio (it always goes; the guard only watches)."""
        kind = message.get("event")
        if kind == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, Mapping) else None
            item = self.state.current_item
            if not isinstance(payload, str) or item is None:
                return
            try:
                audio = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return
            self._bot_audio(item.item_id, audio, now)
        elif kind == "mark":
            item = self.state.current_item
            self._marks.sent(
                item.item_id if item is not None else None,
                item.sent_ms if item is not None else 0.0,
            )
        elif kind == "clear":
            self._phone_cleared(now)

    def _phone_cleared(self, now: float) -> None:
        item = self.state.current_item
        if item is not None and not self._marks.used:
            self._update_heard(item.item_id, now)
        self._marks.cleared()
        self._playback.cleared(now)
        self.state.playback_cleared()

    def from_phone(self, event: object, now: float) -> None:
        """Twilio sent *event* (a parsed Twilio message): the guard learns from it.

        The bot gets the message unchanged. What it teaches (a late barge-in found in the
        caller's audio) is acted on at the next :meth:`on_tick`.
        """
        if isinstance(event, MediaReceived):
            self._caller_frames(event.audio, now)
        elif isinstance(event, MarkPlayed):
            heard = self._marks.echoed()
            if heard is not None:
                self.state.record_playout(item_id=heard[0], heard_ms=heard[1])
        elif isinstance(event, StreamStarted):
            self.watch_phone()
            self.state.call_sid = event.call_sid
            self.state.stream_sid = event.stream_sid
        elif isinstance(event, StreamStopped):
            self.state.begin_closing()
            self.creates.drop_pending(now)

    # ------------------------------------------------------------------ time

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`on_tick` has work next: a judgement due, or a hidden segment to watch."""
        deadlines = [d for d in (self.gate.next_deadline(), self._lost_at()) if d is not None]
        if self._watching is not None:
            deadlines.append(now + _WATCH_INTERVAL)
        return min(deadlines) if deadlines else None

    def _lost_at(self) -> float | None:
        """When the create in flight counts as lost, if one is in flight."""
        timeout = self._config.lost_create_timeout
        sent = self.state.last_create_at
        if timeout is None or sent is None or not self.state.create_in_flight:
            return None
        return sent + timeout

    def on_tick(self, now: float) -> GuardStep:
        """Do what is due: a deferred judgement, a late barge-in, expired deferred creates."""
        step = _NOTHING
        due = self.gate.next_deadline()
        if due is not None and now >= due:
            decision = self.gate.recheck(now)
            if self._pending is not None:
                step = self._judged(self._pending, decision, now)
        step = self._merge(step, self._late_barge_in(now))
        step = self._merge(step, self._lost_create(now))
        return self._merge(step, self._released(now))

    def _lost_create(self, now: float) -> GuardStep:
        """A create got no ``response.created`` in time: forget it, and send it once more."""
        lost_at = self._lost_at()
        if lost_at is None or now < lost_at:
            return _NOTHING
        state = self.state
        state.abandon_create(now=now)
        logger.warning(
            "response.create got no response.created in %.1f s: counted as lost%s",
            self._config.lost_create_timeout,
            "" if self._retried else ", sending it once more",
            extra={"call_sid": state.call_sid, "stream_sid": state.stream_sid, "t": now},
        )
        if self._retried:
            return _NOTHING
        request = CreateRequest(policy=CreatePolicy.DROP, response=self._last_create, label="lost")
        if not self.creates.request(request, now).allowed:
            return _NOTHING
        response = self._last_create
        self._retried = True
        return GuardStep(send=(response_create(response),))

    def _late_barge_in(self, now: float) -> GuardStep:
        late = self.gate.poll_barge_in(now)
        if late is None:
            return _NOTHING
        segment = self._watching
        self._barge_record.record(dataclasses.replace(late, item_id=segment), now)
        if not late.allowed or segment is None:
            return _NOTHING
        return self._barge_in(segment, now)

    def begin_hangup(self, now: float) -> None:
        """The call is being hung up: no new response starts; deferred creates are dropped."""
        self.state.begin_hangup()
        self.creates.drop_pending(now, reason=Reason.HANGUP_PENDING)

    def close(self, now: float) -> None:
        """The call is over: nothing new starts; deferred creates are dropped (and counted)."""
        self.state.begin_closing()
        self.creates.drop_pending(now)


def _turn_detection_of(session: Mapping[str, Any], *, ga: bool) -> dict[str, Any]:
    found: object
    if ga:
        audio = session.get("audio")
        inp = audio.get("input") if isinstance(audio, Mapping) else None
        found = inp.get("turn_detection") if isinstance(inp, Mapping) else None
    else:
        found = session.get("turn_detection")
    return dict(found) if isinstance(found, Mapping) else {"type": "server_vad"}


def _turn_detection_set(message: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The turn detection a ``session.update`` sets (GA or beta place), if it sets one."""
    session = message.get("session")
    for path in (("audio", "input", "turn_detection"), ("turn_detection",)):
        node: object = session
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            return node
    return None


def _keep_turn_control(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """The bot's ``session.update`` with the server's own cancel and create turned off.

    Only a turn detection the update sets is changed; one it leaves out is corrected when the
    session reports it (:meth:`CallGuard.from_model`).
    """
    session = message.get("session")
    if not isinstance(session, Mapping):
        return message
    for path in (("audio", "input", "turn_detection"), ("turn_detection",)):
        node: object = session
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and (
            node.get("interrupt_response") is not False or node.get("create_response") is not False
        ):
            changed = copy.deepcopy(dict(message))
            target = changed["session"]
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = {**node, "interrupt_response": False, "create_response": False}
            return changed
    return message
