"""CallGuard: the turn engine placed around a bot's own sockets (sans-IO).

The middleware is the second driver of :class:`~voiceguard.core.turns.TurnEngine`, the policy the
reference server runs on. The adapters (:class:`~voiceguard.middleware.GuardedCall` and its
sockets) feed :class:`CallGuard` every message the bot sends to or receives from the model and,
when the bot's Twilio socket is wrapped, the phone's; they carry out the :class:`GuardStep` it
returns: events to hand the bot, messages to send to the model and to the phone, and the end of
the call. It never does I/O and never reads a clock: every method takes ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from voiceguard.audio import FRAME_BYTES
from voiceguard.config import GuardConfig
from voiceguard.core.actions import Deliver, EndCall, SendToModel, SendToPhone, TurnAction
from voiceguard.core.bot import BotSide
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreateRequest, ResponseCreateGuard
from voiceguard.core.record import DecisionCounts, DecisionSink
from voiceguard.core.state import CallState
from voiceguard.core.turns import TurnEngine
from voiceguard.decisions import Decision
from voiceguard.protocol.realtime import RealtimeServerEvent
from voiceguard.protocol.twilio import (
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    TwilioEvent,
)

__all__ = ("CallGuard", "GuardStep")


@final
@dataclass(frozen=True, slots=True)
class GuardStep:
    """What an adapter does after handing the guard one message or a tick.

    Attributes:
        actions: The engine's actions, in the order to carry them out:
            :class:`~voiceguard.core.actions.SendToModel` (the bot's own message, as it wrote it
            or corrected, and the guard's cancels, creates, truncates and deletes),
            :class:`~voiceguard.core.actions.SendToPhone` (the bot's audio and marks as the
            playout hands them over, the guard's ``clear``; only with the phone socket
            wrapped), :class:`~voiceguard.core.actions.Deliver` (a model event to hand the bot)
            and :class:`~voiceguard.core.actions.EndCall`.
    """

    actions: tuple[TurnAction, ...] = ()

    @property
    def send(self) -> tuple[Mapping[str, Any], ...]:
        """The messages to the model, in order."""
        return tuple(a.message for a in self.actions if isinstance(a, SendToModel))

    @property
    def to_phone(self) -> tuple[Mapping[str, Any], ...]:
        """The messages to the phone, in order."""
        return tuple(a.message for a in self.actions if isinstance(a, SendToPhone))

    @property
    def deliver(self) -> tuple[object, ...]:
        """The model's events to hand the bot, in order (the objects the adapter passed in)."""
        return tuple(a.event for a in self.actions if isinstance(a, Deliver))

    @property
    def end_call(self) -> str | None:
        """Why the call is to end (the goodbye played, ...), or None."""
        return next((a.reason for a in self.actions if isinstance(a, EndCall)), None)


NOTHING: Final = GuardStep()


def _step(actions: Sequence[TurnAction]) -> GuardStep:
    return GuardStep(tuple(actions)) if actions else NOTHING


@final
class CallGuard:
    """The turn engine of one call, for a bot that keeps its own event loop.

    Feed it the messages the bot sends to the model (:meth:`to_model`) and those it receives
    (:meth:`from_model`), and, if the bot's Twilio socket is wrapped too, the phone's
    (:meth:`to_phone`, :meth:`from_phone`); wake it at :meth:`next_deadline` (:meth:`on_tick`).
    The adapters of :mod:`voiceguard.middleware` do all of this; use the class directly only to
    write an adapter of your own.

    Args:
        config: Turn control or observer mode, and the guards' settings.
        call_sid: The call's id for log records (learnt from Twilio's ``start`` when the phone
            socket is wrapped).
        on_decision: Receives every decision of the call's guards, in order.

    Attributes:
        engine: The call's :class:`~voiceguard.core.turns.TurnEngine`.
        bot: The checks of what the bot sends (:class:`~voiceguard.core.bot.BotSide`).
    """

    __slots__ = ("_config", "bot", "engine")

    def __init__(
        self,
        config: GuardConfig | None = None,
        *,
        call_sid: str | None = None,
        on_decision: DecisionSink | None = None,
    ) -> None:
        self._config = config if config is not None else GuardConfig()
        self.engine = TurnEngine(
            self._config.turns(), on_decision=on_decision, bot=True, phone=False
        )
        self.engine.state.call_sid = call_sid
        self.bot = BotSide(self.engine, on_decision=on_decision)

    @property
    def config(self) -> GuardConfig:
        """The guard's configuration."""
        return self._config

    @property
    def state(self) -> CallState:
        """The call's state."""
        return self.engine.state

    @property
    def gate(self) -> CalibrationGate:
        """The call's calibration gate."""
        return self.engine.gate

    @property
    def cancels(self) -> CancelArbiter:
        """The call's cancel arbiter."""
        return self.engine.cancels

    @property
    def creates(self) -> ResponseCreateGuard:
        """The call's create guard."""
        return self.engine.creates

    def barge_in_statistics(self) -> DecisionCounts:
        """The calibration gate's judgements of ``speech_started`` as the guard acted on them."""
        return self.engine.barge_in_statistics()

    def truncate_statistics(self) -> DecisionCounts:
        """The decisions about the bot's ``conversation.item.truncate`` messages."""
        return self.bot.truncate_statistics()

    def send_statistics(self) -> DecisionCounts:
        """The decisions about malformed messages of the bot (never sent)."""
        return self.bot.send_statistics()

    def judgement(self, item_id: str) -> bool | None:
        """Whether the caller segment *item_id* was real speech (None: not judged, or unknown)."""
        return self.engine.judgement(item_id)

    # ------------------------------------------------------------------ the model

    def to_model(self, message: Mapping[str, Any], now: float) -> GuardStep:
        """The bot sends *message* to the model (a ``send`` of the step is *message* itself when
        it passes unchanged)."""
        return _step(self.bot.to_model(message, now))

    def from_model(self, event: RealtimeServerEvent, raw: object, now: float) -> GuardStep:
        """The model sent *event* (parsed from *raw*): what the bot gets and what goes out."""
        return _step(self.engine.model_event(event, now, raw))

    def request_response(self, request: CreateRequest, now: float) -> tuple[Decision, GuardStep]:
        """Ask for a ``response.create`` of the bot's helpers (:meth:`GuardedCall.create_response
        <voiceguard.middleware.GuardedCall.create_response>`)."""
        decision, actions = self.engine.create(request, now)
        return decision, _step(actions)

    # ------------------------------------------------------------------ the phone

    def watch_phone(self) -> None:
        """The phone socket is wrapped: from now on the guard sees and sends the phone's audio."""
        self.engine.watch_phone()

    def to_phone(self, message: Mapping[str, Any], now: float) -> GuardStep:
        """The bot sends *message* to Twilio: what actually goes to the phone."""
        return _step(self.bot.to_phone(message, now))

    def from_phone(self, event: TwilioEvent, now: float) -> tuple[bool, GuardStep]:
        """Twilio sent *event*: whether the bot sees it (an echo of the guard's own mark is
        hidden), and what to do."""
        engine = self.engine
        match event:
            case MediaReceived():
                audio = event.audio
                if not audio or len(audio) % FRAME_BYTES:
                    return True, NOTHING  # not whole frames: the bot's to report
                return True, _step(engine.caller_audio(audio, now))
            case MarkPlayed():
                actions = engine.mark_played(event.name, now)
                return (actions is None), _step(actions or ())
            case StreamStarted():
                engine.watch_phone()
                engine.stream_started(call_sid=event.call_sid, stream_sid=event.stream_sid, now=now)
                return True, NOTHING
            case StreamStopped():
                engine.stream_stopped(now)
                return True, NOTHING
            case _:
                return True, NOTHING

    # ------------------------------------------------------------------ time and the end

    def next_deadline(self, now: float | None = None) -> float | None:
        """When :meth:`on_tick` has work next (*now* is not needed; accepted as in 0.1)."""
        return self.engine.next_deadline()

    def on_tick(self, now: float) -> GuardStep:
        """Do what is due: a confirmation, a re-judgement, a lost create, the hang-up."""
        return _step(self.engine.on_tick(now))

    def wind_up(self, now: float, *, within: float, instructions: str | None = None) -> None:
        """End the call soon (a server that drains): a goodbye at once, the hang-up once it
        played and by ``now + within`` at the latest (:meth:`BridgeCore.wind_up
        <voiceguard.BridgeCore.wind_up>`). :meth:`on_tick` sends the goodbye."""
        self.engine.wind_up(now, within=within, instructions=instructions)

    def begin_hangup(self, now: float) -> None:
        """The call is being hung up: no new response starts; deferred creates are dropped."""
        self.engine.begin_hang_up(now)

    def close(self, now: float) -> GuardStep:
        """The call is over: nothing new starts; the final sends."""
        return _step(self.engine.close(now))
