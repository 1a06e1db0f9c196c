"""BotSide: what a bot sends, checked and guarded by the turn engine (the middleware's half).

A bot that keeps its own loop sends the model its own messages and the phone its own audio. With
the middleware in between, each passes here first:

* every client event is checked on its shape (:func:`voiceguard.protocol.client.parse_client_event`,
  with the session's input format): a malformed one is not sent, and the decision names the
  message, the field and the problem (``SEND`` / ``MALFORMED``);
* ``response.cancel`` through the :class:`~voiceguard.CancelArbiter`, ``response.create``
  through the :class:`~voiceguard.ResponseCreateGuard` and the engine's one re-send per request,
  ``conversation.item.truncate`` lowered to what the caller heard;
* ``session.update`` keeps turn control;
* the caller's audio (appends) feeds the calibration gate when the phone socket is not watched,
  in whatever format the session uses;
* the bot's ``media``, ``mark`` and ``clear`` to the phone go through the engine's playout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, final

from voiceguard.audio import FRAME_BYTES, AudioFormat, UlawConverter
from voiceguard.core._answers import RETRY_LABEL
from voiceguard.core._session import keep_turn_control, turn_detection_set
from voiceguard.core.actions import SendToModel, SendToPhone, TurnAction
from voiceguard.core.guards.create import CreateRequest
from voiceguard.core.record import DecisionCounts, DecisionSink, Recorder
from voiceguard.core.turns import TurnEngine
from voiceguard.decisions import Action, CreateOrigin, CreatePolicy, Decision, Reason, Verdict
from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol.client import (
    AudioAppend,
    ClientEventError,
    ItemCreate,
    ItemTruncate,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    parse_client_event,
)
from voiceguard.protocol.twilio import (
    OutboundClear,
    OutboundMark,
    OutboundMedia,
    parse_twilio_outbound,
)

__all__ = ("BotSide",)

logger = logging.getLogger("voiceguard.middleware")

#: A bot's create for a request whose one re-send already went.
_RETRIED: Final = "bot: the request's create was re-sent once already"


@final
class BotSide:
    """The bot's messages to the model and to the phone, through the turn engine.

    Args:
        engine: The call's turn engine (made with ``bot=True``).
        on_decision: Receives the decisions made here (truncations, malformed messages).
    """

    __slots__ = ("_caller", "_caller_rest", "_engine", "_send_record", "_truncate_record")

    def __init__(self, engine: TurnEngine, *, on_decision: DecisionSink | None = None) -> None:
        self._engine = engine
        state = engine.state

        def identity() -> tuple[str | None, str | None]:
            return state.call_sid, state.stream_sid

        self._truncate_record = Recorder(
            guard="truncate", logger=logger, sink=on_decision, identity=identity
        )
        self._send_record = Recorder(
            guard="send", logger=logger, sink=on_decision, identity=identity
        )
        self._caller: UlawConverter | None = None
        self._caller_rest = b""

    def truncate_statistics(self) -> DecisionCounts:
        """The decisions about the bot's ``conversation.item.truncate`` messages."""
        return self._truncate_record.snapshot()

    def send_statistics(self) -> DecisionCounts:
        """The decisions about the shape of what the bot sends (malformed messages)."""
        return self._send_record.snapshot()

    # ------------------------------------------------------------------ to the model

    def to_model(self, message: Mapping[str, Any], now: float) -> list[TurnAction]:
        """The bot sends *message* to the model: what actually goes, and what else to do.

        The bot's own message goes as the very object it passed when it passes unchanged
        (``SendToModel.message is message``); a changed copy when a guard lowered or corrected
        it; not at all when a guard suppressed or held it (held ones go later).
        """
        engine = self._engine
        try:
            event = parse_client_event(message, input_format=engine.input_format)
        except ClientEventError as exc:
            if exc.param == "type" and exc.code == "invalid_value":
                return [SendToModel(message=message)]  # a type we do not know: the model's call
            return self._malformed(exc, now)
        match event:
            case AudioAppend():
                out: list[TurnAction] = [SendToModel(message=message)]
                if not engine.phone_watched:
                    out += self._caller_audio(event.audio, engine.input_format, now)
                return out
            case ResponseCancel():
                return self._cancel(message, event, now)
            case ResponseCreate():
                return self._create(message, event, now)
            case ItemTruncate():
                return self._truncate(message, event, now)
            case SessionUpdate():
                return self._session(message)
            case ItemCreate():
                if event.item.get("type") == "function_call_output":
                    engine.tool_finished()
                else:
                    engine.answers.new_request()
                return [SendToModel(message=message)]
            case _:
                return [SendToModel(message=message)]

    def _malformed(self, exc: ClientEventError, now: float) -> list[TurnAction]:
        where = exc.event_type or "message"
        field = f" field {exc.param!r}:" if exc.param else ""
        self._send_record.record(
            Decision(
                action=Action.SEND,
                verdict=Verdict.SUPPRESS,
                reason=Reason.MALFORMED,
                detail=f"{where}:{field} {exc.message} (not sent: the model would refuse it)",
            ),
            now,
        )
        return []

    def _caller_audio(self, audio: bytes, fmt: AudioFormat, now: float) -> list[TurnAction]:
        """The caller's audio, from the bot's appends, for the gate (as 20 ms mu-law frames)."""
        converter = self._caller
        if converter is None or converter.format != fmt:
            converter = self._caller = UlawConverter(fmt)
        data = self._caller_rest + converter.feed(audio)
        whole = len(data) - len(data) % FRAME_BYTES
        self._caller_rest = data[whole:]
        out: list[TurnAction] = []
        for at in range(0, whole, FRAME_BYTES):
            out += self._engine.caller_audio(data[at : at + FRAME_BYTES], now)
        return out

    def _cancel(
        self, message: Mapping[str, Any], event: ResponseCancel, now: float
    ) -> list[TurnAction]:
        engine = self._engine
        decision = engine.cancels.request(
            now, response_id=event.response_id or None, barge_in=engine.caller_speaking
        )
        if not decision.allowed:
            return []
        sent = dict(message)
        if decision.response_id is not None:
            sent["response_id"] = decision.response_id  # never lands on the next response
        return [SendToModel(message=sent)]

    def _create(
        self, message: Mapping[str, Any], event: ResponseCreate, now: float
    ) -> list[TurnAction]:
        response = event.response
        if response is not None and response.get("conversation") == "none":
            return [SendToModel(message=message)]  # out of band: not competing for the turn
        engine = self._engine
        answers = engine.answers
        asked = answers.open
        if asked is not None and asked.sent and response and response != asked.response:
            answers.new_request()  # other instructions: a new request, not this one again
            asked = None
        if asked is not None and asked.sent:
            if engine.state.create_in_flight:
                # A second ask for what is already on its way: held, as its one re-send if it
                # is lost, and dropped once it is answered.
                retry = CreateRequest(
                    origin=CreateOrigin.AUTOMATIC,
                    policy=CreatePolicy.DEFER,
                    response=response,
                    label=RETRY_LABEL,
                )
                engine.creates.request(retry, now)
                return []
            if answers.spent():
                engine.creates.refuse(
                    CreateRequest(response=response, label="bot"),
                    now,
                    reason=Reason.RETRIED_ONCE,
                    detail=_RETRIED,
                )
                return []
        request = CreateRequest(
            policy=engine.config.bot_create_policy, response=response, label="bot"
        )
        if not engine.creates.request(request, now).allowed:
            return []
        engine.bot_create_sent(response)
        return [SendToModel(message=message)]

    def _truncate(
        self, message: Mapping[str, Any], event: ItemTruncate, now: float
    ) -> list[TurnAction]:
        engine = self._engine
        state = engine.state
        item = state.item(event.item_id)
        end = event.audio_end_ms
        if item is None:
            self._truncate_record.record(
                Decision(
                    action=Action.TRUNCATE,
                    verdict=Verdict.SUPPRESS,
                    reason=Reason.UNKNOWN_ITEM,
                    item_id=event.item_id,
                    detail="no audio of it was received",
                ),
                now,
            )
            return []
        engine.update_heard(now)
        point = state.truncate_point(item.item_id)
        target = min(end, 0 if point is None else point)
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
        self._truncate_record.record(
            Decision(
                action=Action.TRUNCATE,
                verdict=Verdict.ALLOW,
                reason=Reason.OK if target == end else Reason.CLAMPED_TO_HEARD,
                response_id=item.response_id,
                item_id=item.item_id,
                detail="" if target == end else f"asked {end} ms, heard {target} ms",
            ),
            now,
        )
        state.truncate_sent(item_id=item.item_id, audio_end_ms=target)
        if not engine.phone_watched:
            # A bot truncates when it clears the phone; without its phone socket this is the
            # only sign that what was still queued there will never play.
            engine.phone_cleared_unseen(now)
        if target == end:
            return [SendToModel(message=message)]
        return [SendToModel(message={**message, "audio_end_ms": target})]

    def _session(self, message: Mapping[str, Any]) -> list[TurnAction]:
        engine = self._engine
        if not engine.config.turn_control:
            return [SendToModel(message=message)]
        detection = turn_detection_set(message)
        if detection is not None:
            # What the bot expects of the server is what the engine does in its place.
            engine.answer_turns = detection.get("create_response") is not False
        return [SendToModel(message=keep_turn_control(message))]

    # ------------------------------------------------------------------ to the phone

    def to_phone(self, message: Mapping[str, Any], now: float) -> list[TurnAction]:
        """The bot sends *message* to Twilio: what actually goes to the phone, in order."""
        engine = self._engine
        try:
            sent = parse_twilio_outbound(message)
        except RemoteProtocolError:
            sent = None  # Twilio refuses it (and logs it in its console): the bot's own to see
        match sent:
            case OutboundMedia():
                placed = engine.phone_audio(sent.audio, now)
                if placed is not None:
                    return placed
            case OutboundMark() if engine.stream_sid is not None:
                return engine.phone_mark(sent.name, now)
            case OutboundClear() if engine.stream_sid is not None:
                return engine.phone_clear(now)
            case _:
                pass
        return [SendToPhone(message=message)]
